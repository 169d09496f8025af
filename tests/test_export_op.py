"""The local-function body against the PyTorch module, on the edge cases of docs/op_spec.md."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gsmlp.exporter.op_function import gated_sparse_mlp_function
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.op_identity import DOMAIN, DOMAIN_VERSION, OP_TYPE

D, H, BLOCK, RANK = 16, 40, 8, 4  # H not a multiple of the block: the last block is partial


def gated_layer(threshold: float) -> GatedSparseMLP:
    torch.manual_seed(0)
    layer = GatedSparseMLP(torch.nn.Linear(D, H), torch.nn.Linear(H, D), block_size=BLOCK)
    layer.attach_gate(MicroGate(D, layer.num_blocks, RANK), threshold=threshold)
    layer.set_mode("gated")
    return layer.eval()


def single_op_model(layer: GatedSparseMLP) -> onnx.ModelProto:
    weights = {
        "W1": layer.fc1.weight, "B1": layer.fc1.bias, "W2": layer.fc2.weight, "B2": layer.fc2.bias,
        "GateDown": layer.gate.down.weight, "GateUp": layer.gate.up.weight, "GateBias": layer.gate.up.bias,
    }  # fmt: skip
    initializers = [numpy_helper.from_array(t.detach().numpy(), name) for name, t in weights.items()]
    node = helper.make_node(
        OP_TYPE, ["X", *weights], ["Y"], domain=DOMAIN, block_size=BLOCK, threshold=float(layer.threshold),
        plugin_version="1", plugin_namespace="",
    )  # fmt: skip
    graph = helper.make_graph(
        [node], "op", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["tokens", D])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["tokens", D])], initializers,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        functions=[gated_sparse_mlp_function()], ir_version=9,
    )  # fmt: skip
    onnx.checker.check_model(model, full_check=True)
    return model


def run_both(layer: GatedSparseMLP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(
        single_op_model(layer).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (onnx_out,) = session.run(None, {"X": x})
    with torch.no_grad():
        torch_out = layer(torch.from_numpy(x)).numpy()
    return onnx_out, torch_out


@pytest.mark.parametrize("threshold", [-1e9, 0.0, 0.3, 1e9])  # all on, mixed, mostly off, all off
def test_body_matches_module(threshold: float) -> None:
    layer = gated_layer(threshold)
    x = np.random.default_rng(0).standard_normal((50, D)).astype(np.float32)
    onnx_out, torch_out = run_both(layer, x)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-5, rtol=0)
    if threshold == 1e9:  # every block off: Y = B2 for every token
        np.testing.assert_array_equal(onnx_out, np.broadcast_to(layer.fc2.bias.detach().numpy(), x.shape))


def test_nan_token_keeps_blocks_on_and_empty_tokens_give_empty_output() -> None:
    layer = gated_layer(1e9)  # every finite logit is off; a NaN logit must be on
    x = np.zeros((2, D), dtype=np.float32)
    x[1, 0] = np.nan
    onnx_out, torch_out = run_both(layer, x)
    assert np.isnan(onnx_out[1]).all() and np.isnan(torch_out[1]).all()
    np.testing.assert_array_equal(onnx_out[0], torch_out[0])
    empty, _ = run_both(layer, np.zeros((0, D), dtype=np.float32))
    assert empty.shape == (0, D)


def test_skipped_neuron_with_inf_weight_contributes_nothing() -> None:
    layer = gated_layer(1e9)
    with torch.no_grad():
        layer.fc1.bias[0] = float("inf")  # neuron 0 is in an inactive block: selected away, not multiplied
    onnx_out, torch_out = run_both(layer, np.ones((3, D), dtype=np.float32))
    assert np.isfinite(onnx_out).all()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-6)
