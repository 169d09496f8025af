"""Gated parity: each ONNX Runtime implementation's own gate decisions (BlockMask) read back, PyTorch
pinned to them, flips counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.model.wrap import gated_layers
from gsmlp.runtime.ort_session import op_library, why_no_library
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.gate_decisions import PinnedReference, split_block_masks
from gsmlp.validation.harness import validate_backends
from gsmlp.validation.tolerances import tolerance_for
from tests.test_export import gated_tiny
from tests.test_validate import SIZE, real_batches


@pytest.fixture(params=["function", "library"])
def ort_op(request: pytest.FixtureRequest) -> str:
    """Both ways ONNX Runtime computes GatedSparseMLP: the inlined function body and the gsmlp op library."""
    if request.param == "library" and op_library() is None:
        pytest.skip(why_no_library())
    return request.param


def _validate(model: torch.nn.Module, path: Path, coco_subset: Path, family: str, op: str = "auto") -> dict:
    backends = {
        "pytorch": PyTorchBackend(model),
        "onnxruntime": OnnxRuntimeBackend(path, gate_decisions=True, op=op),
    }
    return validate_backends(
        backends,
        real_batches(coco_subset, 2),
        family=family,
        tolerance=tolerance_for("fp32"),
        progress=False,
        pin=PinnedReference(backends["pytorch"]),
    )


def test_onnxruntime_reports_every_gated_node_decisions(
    coco_subset: Path, tmp_path: Path, ort_op: str
) -> None:
    model = gated_tiny("detr", keep_fraction=0.6)
    path = tmp_path / "gated.onnx"
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    batch = real_batches(coco_subset, 1)[0]
    backend = OnnxRuntimeBackend(path, gate_decisions=True, op=ort_op)
    outputs = backend.run(batch.pixel_values, batch.pixel_mask)
    decided = split_block_masks(outputs)
    assert set(outputs) == {"logits", "pred_boxes"}
    assert sorted(decided) == sorted(
        f"model.{name.split('.')[0]}.layers.{name.split('.')[1]}.mlp" for name, _ in gated_layers(model)
    )
    assert backend.implementation == ("function body" if ort_op == "function" else "gsmlp op library (CPU)")
    for module_path, blocks in decided.items():
        layer = model.get_submodule(module_path)
        assert blocks.dtype == np.bool_ and blocks.shape[0] == 1
        assert blocks.shape[-1] == layer.num_blocks
    plain = OnnxRuntimeBackend(path, op=ort_op).run(batch.pixel_values, batch.pixel_mask)
    assert set(plain) == {"logits", "pred_boxes"}
    np.testing.assert_array_equal(plain["logits"], outputs["logits"])


def test_same_decisions_give_no_flips_and_fp32_parity(
    family: str, coco_subset: Path, tmp_path: Path, ort_op: str
) -> None:
    # SIBS-pruned FFNs: the exported blocks are the module's own, narrower ones.
    model = gated_tiny(family, keep_fraction=0.6)
    path = tmp_path / "gated.onnx"
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    parity = _validate(model, path, coco_subset, family, ort_op)["parity"]["onnxruntime"]
    gates = parity["gate_decisions"]
    assert gates["pinned"] is True and gates["decisions"] > 1000
    assert gates["flip_rate"] <= 1e-3
    assert parity["max_abs_diff"] <= 1e-4 and parity["pass"] is True


def test_other_decisions_are_counted_as_flips_and_pinning_isolates_the_computation(
    coco_subset: Path, tmp_path: Path, ort_op: str
) -> None:
    model = gated_tiny("detr")
    for _, layer in gated_layers(model):
        layer.threshold.fill_(0.3)  # the file's gates switch fewer blocks on than PyTorch's
    path = tmp_path / "other.onnx"
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    for _, layer in gated_layers(model):
        layer.threshold.fill_(0.0)
    report = _validate(model, path, coco_subset, "detr", ort_op)
    parity = report["parity"]["onnxruntime"]
    assert parity["gate_decisions"]["flip_rate"] > 0.05
    assert parity["max_abs_diff_unpinned"] > 1e-3  # the decisions differ, so do the outputs
    assert parity["max_abs_diff"] <= 1e-4  # under the file's own decisions PyTorch computes the same
    assert parity["pass"] is False and report["pass"] is False
