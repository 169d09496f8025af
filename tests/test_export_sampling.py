"""The exported MultiScaleDeformableAttention nodes (`gsmlp export --sampling op`, the default): one per
deformable attention, their int32 inputs, metadata, fp16, the graph checks, and parity with PyTorch through
real ONNX Runtime on real COCO images (dense and gated, gate decisions pinned)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from gsmlp.errors import GsmlpError
from gsmlp.exporter.export import SAMPLING_KEY, ExportOptions, export_onnx
from gsmlp.exporter.graph import attach_functions, check_loadable, gated_nodes, has_function, sampling_nodes
from gsmlp.exporter.node_groups import is_coordinate_node, node_group
from gsmlp.model.sampling import sampling_owners
from gsmlp.model.wrap import gated_layers, set_mode
from gsmlp.op_identity import DOMAIN, MSDA_OP_TYPE, OP_TYPE
from gsmlp.runtime.ort_session import op_library, why_no_library
from gsmlp.validation.backends import NO_GATED_NODES, OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.gate_decisions import PinnedReference
from gsmlp.validation.harness import InputBatch, validate_backends
from gsmlp.validation.tolerances import tolerance_for
from tests.test_export import gated_tiny
from tests.test_export_real_images import coco_canvas_batch, full_size_gated, thresholds_clear_of_logits
from tests.test_validate import SIZE, real_batches

# fp32, gate decisions pinned: the bound `gsmlp validate` applies (docs/VALIDATION.md).
SCALED_BOUND = 1e-4


@pytest.fixture(params=["function", "library"])
def ort_op(request: pytest.FixtureRequest) -> str:
    """How ONNX Runtime computes the gsmlp nodes: the inlined function bodies, or the gsmlp op library."""
    if request.param == "library" and op_library() is None:
        pytest.skip(why_no_library())
    return request.param


def _export(model: torch.nn.Module, path: Path, **options) -> onnx.ModelProto:
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1], **options))
    return onnx.load(str(path))


def _metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_one_node_per_deformable_attention(dense: bool, tmp_path: Path) -> None:
    model = gated_tiny("deformable-detr")
    attentions = len(sampling_owners(model))
    proto = _export(model, tmp_path / "op.onnx", dense=dense)
    nodes = sampling_nodes(proto)
    assert attentions == len(nodes) == 4  # 2 encoder + 2 decoder layers
    assert len(gated_nodes(proto)) == (0 if dense else 4)  # sampling nodes are not GatedSparseMLP nodes
    assert has_function(proto, MSDA_OP_TYPE) and has_function(proto, OP_TYPE) is not dense
    assert _metadata(proto)[SAMPLING_KEY] == "op"
    assert {(o.domain, o.version) for o in proto.opset_import} >= {(DOMAIN, 1), ("", 17)}
    names = [n.name for n in nodes]
    assert sum("/encoder/" in name for name in names) == sum("/decoder/" in name for name in names) == 2
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    types = {
        v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    for node in nodes:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes == {"plugin_version": b"1", "plugin_namespace": b""}
        assert len(node.input) == 5 and len(node.output) == 1
        assert [types[name] for name in node.input[1:3]] == [onnx.TensorProto.INT32] * 2
        assert types[node.input[0]] == types[node.output[0]] == onnx.TensorProto.FLOAT


def test_inline_sampling_and_detr_hold_no_node(tmp_path: Path) -> None:
    inline = _export(gated_tiny("deformable-detr"), tmp_path / "inline.onnx", sampling="inline")
    assert not sampling_nodes(inline) and not has_function(inline, MSDA_OP_TYPE)
    assert _metadata(inline)[SAMPLING_KEY] == "inline"
    assert any(node.op_type == "GridSample" for node in inline.graph.node)
    dense_inline = _export(gated_tiny("deformable-detr"), tmp_path / "d.onnx", sampling="inline", dense=True)
    assert not dense_inline.functions and all(o.domain != DOMAIN for o in dense_inline.opset_import)
    detr = _export(gated_tiny("detr"), tmp_path / "detr.onnx")
    assert not sampling_nodes(detr) and _metadata(detr)[SAMPLING_KEY] == "none"


def test_fp16_sampling_nodes_keep_int32_shapes(tmp_path: Path) -> None:
    proto = _export(gated_tiny("deformable-detr"), tmp_path / "fp16.onnx", dtype="fp16", dense=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    for node in sampling_nodes(inferred):
        floats = [node.input[0], node.input[3], node.input[4], node.output[0]]
        assert [types[name] for name in floats] == [onnx.TensorProto.FLOAT16] * 4
        assert [types[name] for name in node.input[1:3]] == [onnx.TensorProto.INT32] * 2


def test_fp16_deformable_positions_stay_float32(tmp_path: Path) -> None:
    """The sampling-position arithmetic is the fp16 error's source (docs/VALIDATION.md): kept float32."""
    proto = _export(gated_tiny("deformable-detr"), tmp_path / "fp16.onnx", dtype="fp16", dense=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    # The conversion's own Casts to the fp16 side carry a kept tensor's name: they are edges, not the region.
    kept = [n for n in inferred.graph.node if is_coordinate_node(n) and not n.name.endswith("__fp16/cast")]
    assert {node_group(n.name) for n in kept} >= {"encoder.reference_points", "decoder.sampling_locations"}
    outputs = [types[o] for n in kept for o in n.output if types.get(o) in floats]
    assert outputs and set(outputs) == {onnx.TensorProto.FLOAT}
    ffn = [n for n in inferred.graph.node if node_group(n.name) == "encoder.mlp" and n.op_type == "MatMul"]
    assert ffn and all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in ffn)


def test_node_groups_follow_module_paths() -> None:
    assert node_group("/detector/model/encoder/layers.0/self_attn/sampling_offsets/MatMul") == (
        "encoder.sampling_offsets"
    )
    assert node_group("/detector/model/decoder/layers.1/encoder_attn/Add_3") == "decoder.sampling_locations"
    assert node_group("/detector/model/encoder/Mul_2") == "encoder.reference_points"
    assert node_group("/detector/model/Div_1") == "model.glue"
    assert node_group("/detector/class_embed.0/MatMul") == "heads"


def test_a_node_without_its_function_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "dense.onnx"
    proto = _export(gated_tiny("deformable-detr"), path, dense=True)
    check_loadable(proto, str(path))
    del proto.functions[:]
    with pytest.raises(GsmlpError, match=f"4 {DOMAIN}::{MSDA_OP_TYPE} nodes but no {DOMAIN}::{MSDA_OP_TYPE}"):
        check_loadable(proto, str(path))


def test_one_level_count_per_file(tmp_path: Path) -> None:
    proto = _export(gated_tiny("deformable-detr"), tmp_path / "op.onnx", dense=True)
    with pytest.raises(GsmlpError, match=r"sample \[3, 4\] feature levels.*--sampling inline"):
        attach_functions(proto, sampling_levels={3, 4})


def test_refuses_an_unknown_sampling(tmp_path: Path) -> None:
    with pytest.raises(GsmlpError, match="unknown --sampling 'grid'"):
        export_onnx(gated_tiny("deformable-detr"), tmp_path / "x.onnx", ExportOptions(sampling="grid"))
    assert not (tmp_path / "x.onnx").exists()


def _pinned_parity(model: torch.nn.Module, path: Path, batches, family: str, op: str) -> dict:
    gated = any(layer.mode == "gated" for _, layer in gated_layers(model))
    backends = {
        "pytorch": PyTorchBackend(model),
        "onnxruntime": OnnxRuntimeBackend(path, gate_decisions=gated, op=op),
    }
    report = validate_backends(
        backends,
        batches,
        family=family,
        tolerance=tolerance_for("fp32"),
        progress=False,
        pin=PinnedReference(backends["pytorch"]) if gated else None,
    )
    report["implementation"] = backends["onnxruntime"].implementation
    return report


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_pytorch_matches_onnxruntime_on_real_images(
    dense: bool, ort_op: str, coco_subset: Path, tmp_path: Path
) -> None:
    model = gated_tiny("deformable-detr", keep_fraction=0.6)
    path = tmp_path / "op.onnx"
    _export(model, path, dense=dense)
    if dense:
        set_mode(model, "dense")
    report = _pinned_parity(model, path, real_batches(coco_subset, 2), "deformable-detr", ort_op)
    parity = report["parity"]["onnxruntime"]
    assert parity["max_scaled_diff"] <= SCALED_BOUND, parity
    assert parity["pass"] and parity["detection_agreement"]["agreement"] == 1.0, parity
    if dense:
        assert report["implementation"] == NO_GATED_NODES and parity["gate_decisions"] is None
    else:
        assert parity["gate_decisions"]["pinned"] and parity["gate_decisions"]["flip_rate"] <= 1e-3


# Full-size Deformable-DETR-R50 (random weights, random gates with thresholds clear of the logits), real
# COCO images: two padded images at 480 x 640, dense and gated, the nodes through ONNX Runtime.
@pytest.mark.slow
@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_full_size_sampling_nodes_on_real_images(
    dense: bool, ort_op: str, coco_subset: Path, tmp_path: Path
) -> None:
    height, width, images = 480, 640, 2
    model = full_size_gated("deformable-detr")
    pixel_values, pixel_mask = coco_canvas_batch(coco_subset, images, height, width)
    assert thresholds_clear_of_logits(model, pixel_values, pixel_mask) > 1e-5
    path = tmp_path / "r50.onnx"
    export_onnx(model, path, ExportOptions(height=height, width=width, batch=images, dense=dense))
    if dense:
        set_mode(model, "dense")
    batches = [InputBatch(pixel_values, pixel_mask)]
    parity = _pinned_parity(model, path, batches, "deformable-detr", ort_op)["parity"]["onnxruntime"]
    assert parity["max_scaled_diff"] <= SCALED_BOUND, parity
    assert parity["detection_agreement"]["agreement"] == 1.0, parity["detection_agreement"]
