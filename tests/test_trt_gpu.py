"""The plugin's enqueue on a GPU against the reference of docs/op_spec.md, through a real TensorRT engine.

Builds a one-node ONNX (GatedSparseMLP with random weights and a gate that switches some blocks off) into an
engine with `gsmlp build`'s builder, runs it with TensorRTRunner and compares with a numpy implementation
of the op contract, in fp32 and fp16. Needs tensorrt, pycuda, a CUDA GPU and the plugin library
($GSMLP_TRT_PLUGIN or --plugin-lib's default locations); skips naming what is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gsmlp.errors import GsmlpError

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

D, H, R, BLOCK = 64, 200, 8, 32  # H is not a multiple of BLOCK: the last block is partial
NB = -(-H // BLOCK)


def _require_tensorrt_gpu_plugin() -> Path:
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the Python package {module} is not installed (TensorRT tests need the trt extra)")
    from gsmlp.runtime.trt_common import find_plugin_library, gpu_description, import_tensorrt

    try:
        import_tensorrt()
        gpu_description()
        return find_plugin_library(None)
    except GsmlpError as exc:
        pytest.skip(str(exc))


def gate_logits(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 @ w["GateDown"].T.astype(np.float64)) @ w["GateUp"].T.astype(np.float64) + w["GateBias"]


def reference(x: np.ndarray, w: dict[str, np.ndarray], threshold: float) -> np.ndarray:
    """docs/op_spec.md in float64: gate logits per block, NaN-safe activity, masked ReLU hidden, fc2."""
    x64 = x.astype(np.float64)
    active = ~(gate_logits(x, w) <= threshold)
    mask = np.repeat(active, BLOCK, axis=-1)[..., :H]
    hidden = np.maximum(x64 @ w["W1"].T.astype(np.float64) + w["B1"], 0.0)
    hidden = np.where(mask, hidden, 0.0)
    return hidden @ w["W2"].T.astype(np.float64) + w["B2"]


def _weights(dtype: np.dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        "W1": (H, D),
        "B1": (H,),
        "W2": (D, H),
        "B2": (D,),
        "GateDown": (R, D),
        "GateUp": (NB, R),
        "GateBias": (NB,),
    }
    return {
        name: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(dtype)
        for name, shape in shapes.items()
    }


def _onnx(path: Path, weights: dict[str, np.ndarray], threshold: float, elem_type: int) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    node = helper.make_node(
        "GatedSparseMLP",
        ["X", "W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias"],
        ["Y"],
        domain="gsmlp",
        name="ffn0",
        block_size=BLOCK,
        threshold=threshold,
        plugin_version="1",
        plugin_namespace="",
    )
    graph = helper.make_graph(
        [node],
        "one_gated_ffn",
        [helper.make_tensor_value_info("X", elem_type, ["batch", "tokens", D])],
        [helper.make_tensor_value_info("Y", elem_type, ["batch", "tokens", D])],
        initializer=[numpy_helper.from_array(v, name) for name, v in weights.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("gsmlp", 1)]
    )
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("dtype", "atol", "margin"), [(np.float32, 1e-4, 1e-4), (np.float16, 2e-2, 2e-2)])
def test_plugin_enqueue_matches_reference(tmp_path: Path, dtype: type, atol: float, margin: float) -> None:
    plugin = _require_tensorrt_gpu_plugin()
    from onnx import TensorProto

    from gsmlp.runtime.trt_build import BuildOptions, ShapeSpec, build_engine
    from gsmlp.runtime.trt_runner import TensorRTRunner

    threshold = 0.1
    weights = _weights(np.dtype(dtype))
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    model = _onnx(tmp_path / "ffn.onnx", weights, threshold, elem)
    engine = tmp_path / "ffn.engine"
    # ShapeSpec's (batch, height, width) maps to X's (batch, tokens, D): D is fixed at 64.
    meta = build_engine(
        BuildOptions(
            onnx=model,
            out=engine,
            plugin_lib=plugin,
            shapes=ShapeSpec(min=(1, 1, D), opt=(2, 300, D), max=(2, 1000, D)),
        )
    )
    assert meta["plugin"]["layers"] == 1
    runner = TensorRTRunner(engine, plugin_lib=plugin)
    rng = np.random.default_rng(1)
    for shape in [(2, 300, D), (1, 7, D), (2, 1000, D)]:
        x = rng.standard_normal(shape).astype(dtype)
        y = runner.infer({"X": x})["Y"].astype(np.float64)
        expected = reference(x, weights, threshold)
        logits = gate_logits(x, weights)
        active = ~(logits <= threshold)
        assert 0.05 < active.mean() < 0.95, "the gate must switch some blocks off and keep some on"
        # A logit within rounding of the threshold may fall either way in the kernel's fp32 accumulation;
        # such tokens are left out, every other token must match.
        decided = (np.abs(logits - threshold) > margin).all(axis=-1)
        assert decided.mean() > 0.5
        np.testing.assert_allclose(y[decided], expected[decided], atol=atol, rtol=0)
    runner.close()
