"""The parity harness: real images through PyTorch and ONNX Runtime; the report passes only on agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gsmlp.cli import main
from gsmlp.commands.validate import parse_backends
from gsmlp.errors import GsmlpError
from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.model.checkpoint import save_gated
from gsmlp.model.detector import LoadedDetector, ready_for_gsmlp
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.wrap import gated_layers
from gsmlp.runtime.ort_session import op_library
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.harness import InputBatch, validate_backends
from gsmlp.validation.inputs import fit_batch
from gsmlp.validation.parity import detection_agreement
from gsmlp.validation.tolerances import tolerance_for
from tests.conftest import make_tiny_model
from tests.test_export import attach_random_gates, gated_tiny
from tests.test_export_real_images import coco_canvas_batch

SIZE = (128, 160)


def real_batches(root: Path, count: int = 2) -> list[InputBatch]:
    pixel_values, pixel_mask = coco_canvas_batch(root, count, *SIZE)
    return [InputBatch(pixel_values[i : i + 1], pixel_mask[i : i + 1]) for i in range(count)]


def test_report_passes_when_onnxruntime_matches(family: str, coco_subset: Path, tmp_path: Path) -> None:
    model = gated_tiny(family)
    path = tmp_path / "gated.onnx"
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    backends = {
        "pytorch": PyTorchBackend(model),
        "onnxruntime": OnnxRuntimeBackend(path),
        "tensorrt": "no GPU",
    }
    report = validate_backends(
        backends, real_batches(coco_subset, 3), family=family, tolerance=tolerance_for("fp32"), progress=False
    )
    assert report["pass"] is True
    assert report["backends"]["tensorrt"] == {
        "status": "skipped",
        "reason": "no GPU",
        "metrics": None,
        "latency_ms": None,
    }
    assert report["backends"]["onnxruntime"]["latency_ms"]["batches"] == 2  # the warm-up batch is excluded
    parity = report["parity"]["onnxruntime"]
    assert set(parity) >= {
        "delta_AP",
        "max_abs_diff",
        "pass",
        "max_rel_diff",
        "max_scaled_diff",
        "outputs",
        "detection_agreement",
    }
    assert parity["max_abs_diff"] <= 1e-4 and parity["detection_agreement"]["agreement"] == 1.0
    precision = parity["precision"]
    assert precision["images"] == 3 and precision["floor"] == "pytorch fp32"
    assert precision["reference"] == "pytorch fp64" and precision["pass"] is True
    assert set(precision["outputs"]) == {"logits", "pred_boxes"}
    json.dumps(report, allow_nan=False)  # the report is plain JSON


def test_report_fails_when_the_file_computes_something_else(coco_subset: Path, tmp_path: Path) -> None:
    model = gated_tiny("detr")
    path = tmp_path / "other.onnx"
    for _, layer in gated_layers(model):
        layer.threshold.fill_(0.5)  # a different gate threshold: fewer blocks on in the exported file
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    for _, layer in gated_layers(model):
        layer.threshold.fill_(0.0)
    backends = {"pytorch": PyTorchBackend(model), "onnxruntime": OnnxRuntimeBackend(path)}
    report = validate_backends(
        backends, real_batches(coco_subset), family="detr", tolerance=tolerance_for("fp32")
    )
    assert report["pass"] is False
    parity = report["parity"]["onnxruntime"]
    assert parity["max_abs_diff"] > 1e-4 and parity["precision"]["pass"] is False
    assert parity["precision"]["outputs"]["logits"]["ratio_max"] > 100


def test_a_crashing_backend_is_failed_and_the_others_still_report(coco_subset: Path, tmp_path: Path) -> None:
    model = gated_tiny("detr")
    path = tmp_path / "small.onnx"
    export_onnx(model, path, ExportOptions(height=64, width=64))  # static 64x64: the 128x160 batches crash it
    backends = {"pytorch": PyTorchBackend(model), "onnxruntime": OnnxRuntimeBackend(path)}
    report = validate_backends(
        backends, real_batches(coco_subset), family="detr", tolerance=tolerance_for("fp32")
    )
    assert report["backends"]["onnxruntime"]["status"] == "failed"
    assert "pixel_values" in report["backends"]["onnxruntime"]["reason"]
    assert report["backends"]["pytorch"]["status"] == "ok"
    assert report["pass"] is False


def test_detection_agreement_sees_a_moved_box() -> None:
    rng = np.random.default_rng(0)
    outputs = {"logits": rng.standard_normal((1, 10, 6)), "pred_boxes": rng.uniform(0.2, 0.4, (1, 10, 4))}
    assert detection_agreement(outputs, outputs, "detr")["agreement"] == 1.0
    moved = {"logits": outputs["logits"], "pred_boxes": outputs["pred_boxes"].copy()}
    moved["pred_boxes"][0, :, 0] += 0.01
    result = detection_agreement(outputs, moved, "deformable-detr")
    assert result["agreement"] == 0.0 and result["label_agreement"] == 1.0 and result["min_iou"] < 0.99


def test_the_error_is_absolute_for_small_values_and_relative_for_large_logits() -> None:
    # fp32 rounding grows with the magnitude: 1.9e-4 on a logit of -16 is a relative 1.2e-5, while the same
    # difference on a box coordinate (<= 1) is a real one.
    from gsmlp.validation.precision import scaled_errors

    reference = np.array([-16.0, 0.5, 0.0])
    errors = scaled_errors(reference, reference + 1.9e-4)
    assert errors == pytest.approx([1.9e-4 / 16, 1.9e-4, 1.9e-4])
    assert scaled_errors(np.array([np.nan, 1.0]), np.array([np.nan, np.nan])).tolist() == [0.0, np.inf]


def test_fit_batch_pads_images_and_batch_and_refuses_larger_images() -> None:
    values, mask = np.ones((1, 3, 4, 5), np.float32), np.ones((1, 4, 5), np.int64)
    padded_values, padded_mask, real = fit_batch(values, mask, (2, 3, 8, 8), "x.onnx")
    assert padded_values.shape == (2, 3, 8, 8) and real == 1 and padded_mask[0].sum() == 20
    with pytest.raises(GsmlpError, match="x.onnx was exported for 2x2 images"):
        fit_batch(values, mask, (1, 3, 2, 2), "x.onnx")


def test_parse_backends_names_the_bad_value() -> None:
    assert parse_backends("pytorch, onnxruntime") == ["pytorch", "onnxruntime"]
    with pytest.raises(GsmlpError, match="unknown \\['tensorflow'\\]"):
        parse_backends("pytorch,tensorflow")
    with pytest.raises(GsmlpError, match="must include pytorch"):
        parse_backends("onnxruntime")
    with pytest.raises(GsmlpError, match="names onnxruntime more than once"):
        parse_backends("pytorch,onnxruntime,onnxruntime")
    with pytest.raises(GsmlpError, match="holds only the reference"):
        parse_backends("pytorch")


def test_a_run_where_every_other_backend_was_skipped_compared_nothing_and_does_not_pass(
    coco_subset: Path,
) -> None:
    model = gated_tiny("detr")
    backends = {"pytorch": PyTorchBackend(model), "onnxruntime": "not installed", "tensorrt": "no GPU"}
    report = validate_backends(
        backends, real_batches(coco_subset, 1), family="detr", tolerance=tolerance_for("fp32"), progress=False
    )
    assert report["pass"] is False and report["parity"] == {}
    assert "nothing was compared" in report["reason"]


def gated_checkpoint(tmp_path: Path, family: str) -> Path:
    model = ready_for_gsmlp(make_tiny_model(family), block_size=16)
    attach_random_gates(model)
    preprocess = PreprocessConfig(shortest_edge=128, longest_edge=192)
    save_gated(tmp_path / "gated", LoadedDetector(model, family, preprocess, source="tiny"), calibration={})
    return tmp_path / "gated"


# DETR exports one dynamic file; Deformable DETR a static 192x192 canvas that every preprocessed batch fits.
SHAPE_ARGS = {"detr": ["--dynamic"], "deformable-detr": ["--height", "192", "--width", "192", "--batch", "2"]}


def test_validate_command_on_real_coco_images(family: str, coco_subset: Path, tmp_path: Path) -> None:
    checkpoint = gated_checkpoint(tmp_path, family)
    shape = SHAPE_ARGS[family]
    onnx_path, dense_path, report_path = (
        tmp_path / "gated.onnx",
        tmp_path / "dense.onnx",
        tmp_path / "report.json",
    )
    assert main(["export", "--model", str(checkpoint), "--out", str(onnx_path), *shape]) == 0
    data = ["--data", str(coco_subset / "annotations" / "instances_val2017.json")]
    data += ["--images", str(coco_subset / "val2017"), "--limit", "4", "--batch-size", "2"]
    common = ["validate", "--model", str(checkpoint), *data, "--report", str(report_path)]
    assert main([*common, "--onnx", str(onnx_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["pass"] is True and report["images"] == 4
    # The tiny model is untrained: on real COCO images it scores at chance, well under one AP point. More
    # would mean that the evaluation matched something other than its detections (ground truth, say).
    ap = report["backends"]["onnxruntime"]["metrics"]["AP"]
    assert 0.0 <= ap < 1.0 and ap == pytest.approx(report["backends"]["pytorch"]["metrics"]["AP"], abs=0.1)
    assert report["parity"]["onnxruntime"]["delta_AP"] == pytest.approx(0.0, abs=0.1)
    built = op_library() is not None
    ran = report["backends"]["onnxruntime"]["implementation"]
    assert ran == ("gsmlp op library (CPU)" if built else "function body")
    assert report["parity"]["onnxruntime"]["gate_decisions"]["pinned"] is True
    assert f"| onnxruntime | ok | {ran} |" in report_path.with_suffix(".md").read_text()
    # --ort-op function: the body, pinned to its own decisions, passes as well.
    assert main([*common, "--onnx", str(onnx_path), "--ort-op", "function"]) == 0
    report = json.loads(report_path.read_text())
    assert report["backends"]["onnxruntime"]["implementation"] == "function body" and report["pass"] is True
    # A dense file is checked against the dense model, and passes too.
    assert main(["export", "--model", str(checkpoint), "--out", str(dense_path), "--dense", *shape]) == 0
    assert main([*common, "--onnx", str(dense_path)]) == 0
    assert (
        json.loads(report_path.read_text())["backends"]["onnxruntime"]["implementation"]
        == "none (dense file)"
    )


def test_validate_reports_tensorrt_and_writes_readable_files(coco_subset: Path, tmp_path: Path) -> None:
    """tensorrt is skipped with its reason (no TensorRT or GPU here); others report; md and PNGs follow."""
    from gsmlp.runtime.trt_common import tensorrt_missing

    if tensorrt_missing() is None:
        pytest.skip("TensorRT and a GPU are present: the skip path cannot be seen here")
    checkpoint = gated_checkpoint(tmp_path, "detr")
    onnx_path, report_path = tmp_path / "gated.onnx", tmp_path / "out" / "report.json"
    report_path.parent.mkdir()
    assert main(["export", "--model", str(checkpoint), "--out", str(onnx_path), "--dynamic"]) == 0
    data = ["--data", str(coco_subset / "annotations" / "instances_val2017.json")]
    data += ["--images", str(coco_subset / "val2017"), "--limit", "2"]
    argv = [
        "validate",
        "--model",
        str(checkpoint),
        *data,
        "--report",
        str(report_path),
        "--onnx",
        str(onnx_path),
    ]
    assert main([*argv, "--backends", "pytorch,onnxruntime,tensorrt", "--engine", "missing.engine"]) == 0
    report = json.loads(report_path.read_text())
    assert report["backends"]["tensorrt"]["status"] == "skipped"
    assert "tensorrt" in report["backends"]["tensorrt"]["reason"].lower()
    assert report["backends"]["pytorch"]["ffn_sparsity"]["per_layer"]
    assert report["backends"]["onnxruntime"]["ffn_sparsity"] is None  # not measured, never claimed dense
    assert set(report["parity"]["onnxruntime"]["metrics_delta"]) >= {"AP", "AP50", "APs"}
    names = sorted(p.name for p in report_path.parent.iterdir())
    assert names == ["report.json", "report.md", "report_ap.png", "report_sparsity.png"]
    markdown = (report_path.parent / "report.md").read_text()
    assert "Detection agreement" in markdown and "| logits |" in markdown


def test_a_backend_that_cannot_be_created_is_failed(coco_subset: Path) -> None:
    from gsmlp.validation.session import _Failed

    model = gated_tiny("detr")
    backends = {"pytorch": PyTorchBackend(model), "tensorrt": _Failed("tensorrt", "engine is corrupt")}
    report = validate_backends(
        backends, real_batches(coco_subset, 2), family="detr", tolerance=tolerance_for("fp32"), progress=False
    )
    assert report["backends"]["tensorrt"]["status"] == "failed"
    assert "engine is corrupt" in report["backends"]["tensorrt"]["reason"]
    assert report["backends"]["pytorch"]["status"] == "ok" and report["pass"] is False


def test_tolerance_file_sets_backends_and_dtypes(tmp_path: Path) -> None:
    from dataclasses import replace

    from gsmlp.validation.tolerances import DEFAULT_TOLERANCES, load_tolerances

    builtin = load_tolerances(Path(__file__).parent.parent / "docs" / "tolerances.toml")
    assert {key[1]: value for key, value in builtin.items()} == DEFAULT_TOLERANCES  # the doc file is the code
    path = tmp_path / "t.toml"
    path.write_text("[tensorrt.fp16]\nmax_factor = 20\n[default.fp16]\ndelta_ap = 1\n")
    table = load_tolerances(path)
    fp16 = DEFAULT_TOLERANCES["fp16"]
    assert tolerance_for("fp16", "tensorrt", table) == replace(fp16, delta_ap=1.0, max_factor=20.0)
    assert tolerance_for("fp16", "onnxruntime", table) == replace(fp16, delta_ap=1.0)
    assert tolerance_for("fp32", "onnxruntime", table) == DEFAULT_TOLERANCES["fp32"]
    for text, message in [
        ("[default.fp8]\ndelta_ap = 1\n", "unknown dtype 'fp8'"),
        ("[default.fp32]\nmax_diff = 1\n", "unknown key"),
        ("[default.fp32]\ndelta_ap = 'x'\n", "delta_ap must be a finite number"),
        ("[default.fp32]\nquantile_factor = nan\n", "quantile_factor must be a finite number"),
        ("[default.fp32]\nquantile = 1\n", "quantile must lie strictly between 0 and 1"),
        ("[default.fp32]\nmax_factor = 0.5\n", "max_factor must be >= 1"),
        ("[default.fp32]\nfloor_ulps = true\n", "floor_ulps must be a finite number"),
        ("[default.fp32]\nmax_abs_diff = 1e-4\n", "max_abs_diff is no longer a key.*quantile_factor"),
        # A misspelled table would be read and never applied: every spelling but the known ones is refused.
        ("[onnxrutime.fp32]\ndelta_ap = 1\n", "unknown table \\[onnxrutime\\]"),
        ("[Default.fp32]\ndelta_ap = 1\n", "unknown table \\[Default\\]"),
        ("[pytorch.fp32]\ndelta_ap = 1\n", "unknown table \\[pytorch\\]"),
        ("[default.fp32.extra]\ndelta_ap = 1\n", "unknown key"),
        ("delta_ap = 1\n", "unknown table \\[delta_ap\\]"),
        ("[default]\ndelta_ap = 1\n", "unknown dtype 'delta_ap'"),
        ("[default.fp32\n", "is corrupt: not valid TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(GsmlpError, match=message):
            load_tolerances(path)
    with pytest.raises(GsmlpError, match="--tolerances .*missing.toml: no such file"):
        load_tolerances(tmp_path / "missing.toml")
