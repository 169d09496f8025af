"""gsmlp.exporter: one GatedSparseMLP node per gated FFN, a valid local function, parity with PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from gsmlp.calibration.sibs import select_neurons
from gsmlp.errors import GsmlpError
from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.exporter.graph import gated_nodes, has_function
from gsmlp.exporter.node_groups import is_coordinate_node
from gsmlp.model.gated_mlp import MicroGate
from gsmlp.model.wrap import gated_layers, set_mode, wrap_ffns
from gsmlp.op_identity import DOMAIN, OP_TYPE
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend, read_onnx
from gsmlp.validation.parity import output_differences
from tests.conftest import make_tiny_model

# Deformable DETR needs every feature level at least 2 pixels per side (see docs/EXPORT.md): 128 px.
SIZE = (128, 128)


def attach_random_gates(model: torch.nn.Module, seed: int = 0, keep_fraction: float | None = None) -> None:
    """Random micro-gates (threshold 0: about half the blocks on), after an optional random SIBS pruning."""
    generator = torch.Generator().manual_seed(seed)
    for _, layer in gated_layers(model):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        if keep_fraction is not None:
            keep = torch.rand(layer.hidden, generator=generator) < keep_fraction
            select_neurons(layer, keep.nonzero().flatten())
        layer.attach_gate(MicroGate(layer.d_model, layer.num_blocks, rank=8), threshold=0.0)
    set_mode(model, "gated")


def gated_tiny(family: str, block_size: int = 16, keep_fraction: float | None = None) -> torch.nn.Module:
    model = wrap_ffns(make_tiny_model(family), block_size=block_size)
    attach_random_gates(model, keep_fraction=keep_fraction)
    return model


def random_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    pixel_values = generator.standard_normal((batch, 3, height, width)).astype(np.float32)
    return pixel_values, np.ones((batch, height, width), dtype=np.int64)


def max_abs_diff(
    model: torch.nn.Module, path: str, pixel_values: np.ndarray, pixel_mask: np.ndarray
) -> float:
    reference = PyTorchBackend(model).run(pixel_values, pixel_mask)
    other = OnnxRuntimeBackend(path).run(pixel_values, pixel_mask)
    return max(d["max_abs_diff"] for d in output_differences(reference, other).values())


def test_one_node_per_gated_ffn_with_function_and_full_check(family: str, tmp_path) -> None:
    model = gated_tiny(family)
    path = tmp_path / "gated.onnx"
    summary = export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    proto = onnx.load(str(path))
    nodes = gated_nodes(proto)
    assert summary.gated_nodes == len(nodes) == len(list(gated_layers(model))) == 4
    assert has_function(proto)
    assert {(o.domain, o.version) for o in proto.opset_import} >= {(DOMAIN, 1), ("", 17)}
    for node in nodes:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes == {
            "block_size": 16,
            "threshold": 0.0,
            "plugin_version": b"1",
            "plugin_namespace": b"",
        }
        assert len(node.input) == 8 and len(node.output) == 1  # the optional BlockMask is not deployed
        assert all(name in {i.name for i in proto.graph.initializer} for name in node.input[1:])
    assert [list(f.output) for f in proto.functions if f.name == OP_TYPE] == [["Y"]]
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    typed = {
        v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    untyped = [o for n in inferred.graph.node for o in n.output if o and not typed.get(o)]
    assert not untyped, untyped[:5]
    assert all(typed[n.output[0]] == onnx.TensorProto.FLOAT for n in nodes)


def test_expose_block_masks_adds_one_output_per_node_and_leaves_the_file(tmp_path) -> None:
    from gsmlp.exporter.graph import expose_block_masks

    path = tmp_path / "gated.onnx"
    export_onnx(gated_tiny("detr"), path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    raw = path.read_bytes()
    proto = onnx.load(str(path))
    exposed, names = expose_block_masks(proto)
    assert path.read_bytes() == raw and all(len(n.output) == 1 for n in gated_nodes(proto))
    nodes = gated_nodes(exposed)
    assert names == [n.output[1] for n in nodes] and len(names) == 4
    assert all(name.startswith("gsmlp.block_mask:/detector/model/") for name in names)
    for node in nodes:
        assert {a.name: a.i for a in node.attribute if a.name == "block_mask_output"} == {
            "block_mask_output": 1
        }
    assert [list(f.output) for f in exposed.functions] == [["Y", "BlockMask"]]
    outputs = {o.name: o.type.tensor_type.elem_type for o in exposed.graph.output}
    assert all(outputs[name] == onnx.TensorProto.BOOL for name in names)
    assert expose_block_masks(exposed)[1] == []  # already exposed: nothing added twice


def test_function_body_uses_attribute_references_and_where() -> None:
    from gsmlp.exporter.op_function import gated_sparse_mlp_function

    function = gated_sparse_mlp_function()
    refs = {a.ref_attr_name for n in function.node for a in n.attribute if a.ref_attr_name}
    assert refs == {"block_size", "threshold"}
    ops = [n.op_type for n in function.node]
    assert "Where" in ops and "Not" in ops and "LessOrEqual" in ops and "Mul" not in ops


@pytest.mark.parametrize("mode", ["dense", "gated"])
def test_onnxruntime_matches_pytorch(family: str, mode: str, tmp_path) -> None:
    model = gated_tiny(family)
    if mode == "dense":
        set_mode(model, "dense")
    path = str(tmp_path / f"{mode}.onnx")
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1], dense=mode == "dense"))
    assert max_abs_diff(model, path, *random_inputs(1, *SIZE)) <= 1e-4


def test_sibs_pruned_ffns_export_exactly(family: str, tmp_path) -> None:
    model = gated_tiny(family, keep_fraction=0.6)
    path = str(tmp_path / "sibs.onnx")
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    proto = onnx.load(path)
    initializers = {i.name: i for i in proto.graph.initializer}
    widths = [initializers[n.input[1]].dims[0] for n in gated_nodes(proto)]
    layers = [layer for _, layer in gated_layers(model)]
    assert widths == [layer.hidden for layer in layers]
    assert all(layer.hidden < layer.dense_hidden for layer in layers)
    assert max_abs_diff(model, path, *random_inputs(1, *SIZE)) <= 1e-4


def test_static_layers_and_dense_flag_export_plain_ffns(tmp_path) -> None:
    model = gated_tiny("detr", keep_fraction=0.5)
    set_mode(model, "static")
    static_path = str(tmp_path / "static.onnx")
    summary = export_onnx(model, static_path, ExportOptions(height=SIZE[0], width=SIZE[1]))
    assert summary.gated_nodes == 0 and summary.plain_ffns == 4
    proto = onnx.load(static_path)
    assert not gated_nodes(proto) and not has_function(proto)
    assert max_abs_diff(model, static_path, *random_inputs(1, *SIZE)) <= 1e-4
    dense_path = str(tmp_path / "dense.onnx")
    export_onnx(gated_tiny("detr"), dense_path, ExportOptions(height=SIZE[0], width=SIZE[1], dense=True))
    dense_proto = onnx.load(dense_path)
    assert (
        not gated_nodes(dense_proto)
        and dict((p.key, p.value) for p in dense_proto.metadata_props)["gsmlp.mode"] == "dense"
    )


def test_dynamic_batch_and_size_detr(tmp_path) -> None:
    model = gated_tiny("detr")
    path = str(tmp_path / "dynamic.onnx")
    export_onnx(model, path, ExportOptions(height=96, width=96, dynamic=True))
    for batch, height, width in [(1, 96, 96), (2, 128, 160), (3, 64, 192)]:
        pixel_values, pixel_mask = random_inputs(batch, height, width, seed=batch)
        if batch > 1:  # a mixed-size batch: the second image is narrower and padded
            pixel_mask[1, :, width // 2 :] = 0
            pixel_values[1, :, :, width // 2 :] = 0
        assert max_abs_diff(model, path, pixel_values, pixel_mask) <= 1e-4, (batch, height, width)


def test_fp16_is_strongly_typed_and_close(family: str, tmp_path) -> None:
    model = gated_tiny(family)
    path = str(tmp_path / "fp16.onnx")
    export_onnx(model, path, ExportOptions(height=SIZE[0], width=SIZE[1], dtype="fp16"))
    proto = onnx.load(path)
    # Deformable files keep their sampling-position arithmetic (and its constants) float32.
    positional = {name for n in proto.graph.node if is_coordinate_node(n) for name in n.input}
    weights = [i for i in proto.graph.initializer if len(i.dims) >= 2 and i.name not in positional]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in gated_nodes(inferred))
    norms = [n for n in proto.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert norms and all(types.get(n.output[0]) == onnx.TensorProto.FLOAT for n in norms)
    diff = max_abs_diff(model, path, *random_inputs(1, *SIZE))
    assert 0 < diff <= 5e-3  # tiny models: see docs/EXPORT.md for the full-size figures


def test_refuses_model_without_gates(tmp_path) -> None:
    model = wrap_ffns(make_tiny_model("detr"))
    with pytest.raises(GsmlpError, match="no gated or SIBS-pruned FFN.*--dense"):
        export_onnx(model, tmp_path / "x.onnx", ExportOptions(height=64, width=64))
    assert not (tmp_path / "x.onnx").exists()


def test_refuses_oracle_mode(tmp_path) -> None:
    model = gated_tiny("detr")
    set_mode(model, "oracle")
    with pytest.raises(GsmlpError, match="oracle mode"):
        export_onnx(model, tmp_path / "x.onnx", ExportOptions(height=64, width=64))


def test_refuses_dynamic_deformable(tmp_path) -> None:
    with pytest.raises(GsmlpError, match="--dynamic is not supported for Deformable DETR"):
        export_onnx(gated_tiny("deformable-detr"), tmp_path / "x.onnx", ExportOptions(dynamic=True))


def test_unwritable_output_names_the_path(tmp_path) -> None:
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("")
    with pytest.raises(GsmlpError, match=f"cannot write .*x.onnx: {not_a_folder} is a file, not a folder"):
        export_onnx(gated_tiny("detr"), not_a_folder / "x.onnx", ExportOptions(height=64, width=64))


def test_onnx_without_function_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "gated.onnx"
    export_onnx(gated_tiny("detr"), path, ExportOptions(height=64, width=64))
    proto = onnx.load(str(path))
    del proto.functions[:]
    broken = tmp_path / "no_function.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(GsmlpError, match=f"{broken}.*no {DOMAIN}::{OP_TYPE} local function"):
        read_onnx(broken)
    with pytest.raises(GsmlpError, match="junk.onnx is corrupt or not an ONNX model"):
        (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
        read_onnx(tmp_path / "junk.onnx")
