"""The parity criterion: a backend's error against PyTorch fp64, judged by PyTorch's own error in the file's
dtype. It must pass correct files and fail files with small real errors whose detections stay the same."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gsmlp.cli import main
from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.model.wrap import gated_layers, set_mode
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.gate_decisions import PinnedReference
from gsmlp.validation.harness import validate_backends
from gsmlp.validation.precision import ULP, PrecisionErrors, covered_batches, judge
from gsmlp.validation.tolerances import DEFAULT_TOLERANCES, tolerance_for
from tests.test_export import gated_tiny
from tests.test_validate import SIZE, gated_checkpoint, real_batches


def _classifier(model: nn.Module) -> nn.Linear:
    head = getattr(model, "class_labels_classifier", None) or model.class_embed
    return head[-1] if isinstance(head, nn.ModuleList) else head


@contextlib.contextmanager
def _changed(tensor: torch.Tensor, change: Callable[[torch.Tensor], None]) -> Iterator[None]:
    saved = tensor.detach().clone()
    try:
        with torch.no_grad():
            change(tensor)
        yield
    finally:
        with torch.no_grad():
            tensor.copy_(saved)


def _validate_file(
    model: nn.Module, path: Path, coco_subset: Path, family: str, gated: bool, **options
) -> dict:
    pytorch = PyTorchBackend(model)
    backends = {"pytorch": pytorch, "onnxruntime": OnnxRuntimeBackend(path, gate_decisions=gated)}
    return validate_backends(
        backends,
        real_batches(coco_subset, 3),
        family=family,
        tolerance=tolerance_for(options.get("dtype", "fp32")),
        progress=False,
        pin=PinnedReference(pytorch) if gated else None,
        **options,
    )


PERTURBATIONS = {
    "class-logit bias + 1e-3": lambda model: (_classifier(model).bias, lambda t: t[0].add_(1e-3)),
    "encoder.0 fc1.weight x (1 + 1e-3)": lambda model: (
        dict(gated_layers(model))["encoder.0"].fc1.weight,
        lambda t: t.mul_(1 + 1e-3),
    ),
}


@pytest.mark.parametrize("mode", ["dense", "gated"])
def test_files_with_small_real_errors_fail_while_their_detections_stay(
    family: str, mode: str, coco_subset: Path, tmp_path: Path
) -> None:
    model = gated_tiny(family)
    if mode == "dense":
        set_mode(model, "dense")
    options = ExportOptions(height=SIZE[0], width=SIZE[1], dense=mode == "dense")
    correct = tmp_path / "correct.onnx"
    export_onnx(model, correct, options)
    passed = _validate_file(model, correct, coco_subset, family, mode == "gated")["parity"]["onnxruntime"]
    assert passed["pass"] is True and passed["precision"]["pass"] is True
    tolerance = DEFAULT_TOLERANCES["fp32"]
    for case, perturbation in PERTURBATIONS.items():
        wrong = tmp_path / "wrong.onnx"
        with _changed(*perturbation(model)):
            export_onnx(model, wrong, options)
        failed = _validate_file(model, wrong, coco_subset, family, mode == "gated")["parity"]["onnxruntime"]
        logits = failed["precision"]["outputs"]["logits"]
        assert failed["pass"] is False and logits["pass"] is False, case
        # Not by a hair: the wrong file's logits error is several times the bound.
        assert logits["ratio_quantile"] > 2 * tolerance.quantile_factor, (case, logits)
        # ... while what the other checks see stays as it was.
        assert failed["detection_agreement"]["label_agreement"] >= 0.95, case
        if mode == "gated":
            assert failed["gate_decisions"]["flip_rate"] <= tolerance.max_gate_flip_rate, case


def test_an_fp16_file_is_judged_by_pytorch_fp16_error(coco_subset: Path, tmp_path: Path) -> None:
    model = gated_tiny("detr")
    path = tmp_path / "gated-fp16.onnx"
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1], dtype="fp16"))
    precision = _validate_file(model, path, coco_subset, "detr", True, dtype="fp16")["parity"]["onnxruntime"][
        "precision"
    ]
    assert precision["floor"] == "pytorch fp16 (torch.autocast)"
    assert precision["floor_unit"] == pytest.approx(DEFAULT_TOLERANCES["fp16"].floor_ulps * ULP["fp16"])
    for entry in precision["outputs"].values():
        # PyTorch's fp16 error is an fp16 one, far above fp32 rounding: the floor measures fp16 arithmetic.
        assert entry["floor_max"] > 100 * ULP["fp32"]
        assert np.isfinite(entry["ratio_quantile"]) and np.isfinite(entry["ratio_max"])


def test_ratios_divide_by_the_floor_raised_to_the_ulp_unit() -> None:
    tolerance = DEFAULT_TOLERANCES["fp32"]
    unit = tolerance.floor_ulps * ULP["fp32"]
    errors = PrecisionErrors()
    reference = {"logits": np.zeros((1, 1000)), "pred_boxes": np.full((1, 1000), 0.5)}
    backend = {"logits": np.zeros((1, 1000)), "pred_boxes": np.full((1, 1000), 0.5 + 10 * unit)}
    floor = {"logits": np.zeros((1, 1000)), "pred_boxes": np.full((1, 1000), 0.5 + unit / 2)}
    errors.add(reference, backend, floor, images=1)
    judged = judge(errors, "fp32", tolerance)
    # Both exact: no division by zero, a ratio of 1. The boxes are 10 units off where PyTorch is half one.
    assert judged["outputs"]["logits"]["ratio_max"] == 1.0 and judged["outputs"]["logits"]["pass"] is True
    assert judged["outputs"]["pred_boxes"]["ratio_quantile"] == pytest.approx(10, rel=1e-3)
    assert judged["outputs"]["pred_boxes"]["pass"] is False and judged["pass"] is False
    assert judge(PrecisionErrors(), "fp32", tolerance)["pass"] is False  # nothing measured is no pass


def test_the_quantile_is_judged_only_where_enough_elements_lie_beyond_it() -> None:
    """300 values: the 0.999 quantile is their largest, judged by max_factor alone; 20,000: by both."""
    tolerance = DEFAULT_TOLERANCES["fp32"]
    unit = ULP["fp32"]

    def judged(elements: int) -> dict:
        errors = PrecisionErrors()
        reference = {"pred_boxes": np.full((1, elements), 0.5)}
        backend = np.full((1, elements), 0.5 + 5 * unit)  # 5 units off everywhere, PyTorch 1 unit
        errors.add(reference, {"pred_boxes": backend}, {"pred_boxes": np.full((1, elements), 0.5 + unit)}, 1)
        return judge(errors, "fp32", tolerance)["outputs"]["pred_boxes"]

    few, many = judged(300), judged(20_000)
    assert few["ratio_quantile"] == pytest.approx(5, rel=1e-3) and few["quantile_judged"] is False
    assert few["pass"] is True  # 5 <= max_factor 8
    assert many["quantile_judged"] is True and many["pass"] is False  # 5 > quantile_factor 4


def test_the_reference_covers_every_image_of_a_small_set_and_a_spread_of_a_large_one() -> None:
    assert covered_batches([1] * 400, 500) == set(range(400))
    assert covered_batches([1] * 400, None) == set(range(400))
    spread = covered_batches([1] * 5000, 500)
    assert len(spread) == 500 and min(spread) == 0 and max(spread) == 4999
    assert covered_batches([4] * 10, 8) == {0, 9}  # batches of four: two batches hold eight images


def test_validate_reports_how_many_images_the_fp64_reference_covered(
    coco_subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = gated_checkpoint(tmp_path, "detr")
    onnx_file = tmp_path / "gated.onnx"
    assert main(["export", "--model", str(checkpoint), "--out", str(onnx_file), "--dynamic"]) == 0
    data = ["--data", str(coco_subset / "annotations" / "instances_val2017.json")]
    data += ["--images", str(coco_subset / "val2017"), "--limit", "3"]
    report = tmp_path / "r.json"
    argv = ["validate", "--model", str(checkpoint), "--onnx", str(onnx_file), *data, "--report", str(report)]
    assert main([*argv, "--fp64-images", "2"]) == 0
    precision = json.loads(report.read_text())["parity"]["onnxruntime"]["precision"]
    assert precision["images"] == 2 and precision["pass"] is True
    markdown = report.with_suffix(".md").read_text()
    assert "| output | error q99.9 | floor q99.9 | ratio q99.9 |" in markdown and "on 2 images" in markdown
    assert "error vs pytorch fp64 / pytorch fp32's, 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--fp64-images", "0", "--force"])
    assert exit_info.value.code == 2
    assert "--fp64-images: expected a whole number >= 1 or 'all', got '0'" in capsys.readouterr().err
