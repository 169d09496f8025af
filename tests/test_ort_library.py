"""The gsmlp ONNX Runtime op library (plugins/onnxruntime/) through real ONNX files and real ONNX Runtime.

Registration, every attribute and dtype, shapes (an empty token count too), bad inputs (an error naming the
input, never a crash), parity with the torch op and the PyTorch module, and its threads. The session on an
exported gated model against PyTorch is tests/test_gate_decisions.py (parametrized over library and body).

The library is built when GSMLP_ONNXRUNTIME_INCLUDE names the ONNX Runtime C API headers at install time
(.ci/run sets it); these tests skip, saying so, only where it was not built. The CUDA provider's tests also
need a GPU and onnxruntime-gpu's CUDA provider.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.nn import functional as F

from gsmlp import kernels
from gsmlp.errors import GsmlpError, NotBuiltError
from gsmlp.exporter.graph import expose_block_masks
from gsmlp.exporter.op_function import gated_sparse_mlp_function
from gsmlp.model.gated_mlp import active_blocks
from gsmlp.op_identity import BLOCK_MASK_ATTRIBUTE, DOMAIN, DOMAIN_VERSION, INPUTS, OP_TYPE
from gsmlp.runtime import ort_session
from gsmlp.runtime.ort_session import FUNCTION_BODY, op_library, open_session, why_no_library

if op_library() is None:
    pytest.skip(why_no_library(), allow_module_level=True)

D, H, BLOCK, RANK = 32, 72, 16, 8  # H not a multiple of the block: the last block is partial
FP = {"fp32": (np.float32, TensorProto.FLOAT), "fp16": (np.float16, TensorProto.FLOAT16)}


def weights(
    d: int = D, h: int = H, block: int = BLOCK, rank: int = RANK, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    nb = -(-h // block)
    shapes = {"W1": (h, d), "B1": (h,), "W2": (d, h), "B2": (d,), "GateDown": (rank, d), "GateUp": (nb, rank),
              "GateBias": (nb,)}  # fmt: skip
    return {
        name: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
        for name, shape in shapes.items()
    }


def op_model(
    w: dict[str, np.ndarray], *, dtype: str = "fp32", block_mask: bool = False, x_shape=("tokens", D),
    function: bool = True, weights_as_inputs: bool = False, **attributes,
) -> onnx.ModelProto:  # fmt: skip
    """One GatedSparseMLP node as the exporter writes it; `attributes` override (None: drop) the defaults."""
    np_type, onnx_type = FP[dtype]
    attrs = {
        "block_size": BLOCK,
        "threshold": 0.0,
        "plugin_version": "1",
        "plugin_namespace": "",
        **attributes,
    }
    if block_mask:
        attrs.setdefault(BLOCK_MASK_ATTRIBUTE, 1)
    attrs = {k: v for k, v in attrs.items() if v is not None}
    outputs = ["Y", "BlockMask"] if block_mask else ["Y"]
    node = helper.make_node(OP_TYPE, ["X", *INPUTS[1:]], outputs, domain=DOMAIN, name="ffn", **attrs)
    tensors = [numpy_helper.from_array(w[name].astype(np_type), name) for name in INPUTS[1:]]
    inputs = [helper.make_tensor_value_info("X", onnx_type, list(x_shape) if x_shape is not None else None)]
    if weights_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in tensors]
        tensors = []
    graph_outputs = [helper.make_tensor_value_info("Y", onnx_type, None)]
    if block_mask:
        graph_outputs.append(helper.make_tensor_value_info("BlockMask", TensorProto.BOOL, None))
    graph = helper.make_graph([node], "op", inputs, graph_outputs, tensors)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    functions = [gated_sparse_mlp_function(block_mask)] if function else []
    return helper.make_model(graph, opset_imports=opsets, functions=functions, ir_version=9)


def library_session(model: onnx.ModelProto, **options):
    return open_session(model.SerializeToString(), op="library", use_cuda=False, **options).session


def reference(w: dict[str, np.ndarray], x: np.ndarray, block: int = BLOCK, threshold: float = 0.0):
    """The PyTorch contract (gsmlp.model.gated_mlp): Y and the block decisions, in fp32."""
    t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in w.items()}
    xt = torch.from_numpy(x.astype(np.float32))
    blocks = active_blocks(F.linear(F.linear(xt, t["GateDown"]), t["GateUp"], t["GateBias"]), threshold)
    mask = blocks.repeat_interleave(block, dim=-1)[..., : t["W1"].shape[0]]
    h = torch.where(mask, F.relu(F.linear(xt, t["W1"], t["B1"])), torch.zeros(()))
    return F.linear(h, t["W2"], t["B2"]).numpy(), blocks.numpy()


def tokens(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# Registration


def _readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", *args, str(op_library())], capture_output=True, text=True, check=True
    ).stdout


def test_library_exports_only_register_custom_ops_and_links_no_runtime() -> None:
    defined = [
        line.split()[-1]
        for line in _readelf("--dyn-syms", "-W").splitlines()
        if " GLOBAL " in line and " UND " not in line
    ]
    assert defined == ["RegisterCustomOps"]
    needed = _readelf("-d")
    assert "libgsmlp_kernels.so" in needed and "$ORIGIN" in needed
    assert "libonnxruntime" not in needed and "libtorch" not in needed and "libc10" not in needed


def test_registered_under_the_exporters_identity_and_serves_nodes_without_a_body() -> None:
    # No local function in the file: only a kernel registered as gsmlp::GatedSparseMLP v1 can run it.
    w = weights()
    x = tokens(9, D)
    (y,) = library_session(op_model(w, function=False)).run(None, {"X": x})
    np.testing.assert_allclose(y, reference(w, x)[0], atol=1e-4)
    with pytest.raises(GsmlpError):
        open_session(op_model(w, function=False).SerializeToString(), op="function")


def test_the_library_takes_the_node_over_the_function_body() -> None:
    # A plugin_version the library refuses but the body ignores: an error proves the library claimed the node.
    model = op_model(weights(), plugin_version="2").SerializeToString()
    with pytest.raises(GsmlpError, match='plugin_version is "2"; this library implements "1"'):
        open_session(model, op="library", use_cuda=False)
    assert open_session(model, op="function").implementation == FUNCTION_BODY


def test_open_session_names_the_implementation_and_refuses_a_missing_library(monkeypatch) -> None:
    model = op_model(weights()).SerializeToString()
    assert open_session(model, op="library", use_cuda=False).implementation == "gsmlp op library (CPU)"
    assert open_session(model, op="auto", use_cuda=False).implementation == "gsmlp op library (CPU)"
    assert open_session(model, op="function").implementation == FUNCTION_BODY
    monkeypatch.setattr(ort_session, "op_library", lambda: None)
    with pytest.raises(NotBuiltError, match="GSMLP_ONNXRUNTIME_INCLUDE"):
        open_session(model, op="library")
    assert open_session(model, op="auto").implementation == FUNCTION_BODY
    with pytest.raises(GsmlpError, match="choose one of auto, library, function"):
        open_session(model, op="sparse")


# Attributes, dtypes, shapes


@pytest.mark.parametrize("block", [1, 8, 16, 72, 100])  # per neuron .. one block larger than H
@pytest.mark.parametrize("threshold", [float("-inf"), -0.2, 0.0, 0.4, float("inf")])
def test_block_size_and_threshold_match_pytorch(block: int, threshold: float) -> None:
    w = weights(block=block)
    x = tokens(40, D)
    model = op_model(w, block_mask=True, block_size=block, threshold=threshold)
    y, mask = library_session(model).run(None, {"X": x})
    y_ref, mask_ref = reference(w, x, block, threshold)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_allclose(y, y_ref, atol=1e-4)
    assert mask.dtype == np.bool_ and mask.shape == (40, -(-H // block))


def test_fp16_follows_the_contract_with_fp32_accumulation() -> None:
    w = weights()
    x = tokens(33, D).astype(np.float16)
    w16 = {k: v.astype(np.float16) for k, v in w.items()}
    y, mask = library_session(op_model(w, dtype="fp16", block_mask=True)).run(None, {"X": x})
    assert y.dtype == np.float16
    # The reference on the fp16-rounded values, in fp32: the kernel rounds once, at the end.
    y_ref, mask_ref = reference(w16, x)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_allclose(y.astype(np.float32), y_ref, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_matches_the_torch_op_on_the_same_kernel(dtype: str) -> None:
    w = weights()
    np_type = FP[dtype][0]
    x = tokens(300, D).astype(np_type)  # more than one 256-token chunk
    y, mask = library_session(op_model(w, dtype=dtype, block_mask=True)).run(None, {"X": x})
    t = [torch.from_numpy(w[name].astype(np_type)) for name in INPUTS[1:]]
    y_torch, active = torch.ops.gsmlp.gated_sparse_mlp(torch.from_numpy(x), *t, BLOCK, 0.0, 2)
    np.testing.assert_array_equal(mask.sum(-1), active.numpy())
    np.testing.assert_allclose(
        y.astype(np.float32), y_torch.float().numpy(), atol=1e-5 if dtype == "fp32" else 2e-3
    )


@pytest.mark.parametrize("shape", [(D,), (7, D), (2, 5, D), (2, 3, 4, D)])
def test_tokens_are_all_leading_dimensions(shape: tuple[int, ...]) -> None:
    w = weights()
    x = tokens(*shape)
    model = op_model(w, block_mask=True, x_shape=[f"d{i}" for i in range(len(shape) - 1)] + [D])
    y, mask = library_session(model).run(None, {"X": x})
    y_ref, mask_ref = reference(w, x)
    assert y.shape == shape and mask.shape == (*shape[:-1], -(-H // BLOCK))
    np.testing.assert_allclose(y, y_ref, atol=1e-4)
    np.testing.assert_array_equal(mask, mask_ref)


@pytest.mark.parametrize("shape", [(0, D), (2, 0, D)])
def test_an_empty_token_count_gives_empty_outputs(shape: tuple[int, ...]) -> None:
    model = op_model(weights(), block_mask=True, x_shape=["a", "b", D][-len(shape) :])
    y, mask = library_session(model).run(None, {"X": np.zeros(shape, np.float32)})
    assert y.shape == shape and mask.shape == (*shape[:-1], -(-H // BLOCK))


def test_without_block_mask_output_y_is_the_same() -> None:
    w = weights()
    x = tokens(20, D)
    (y,) = library_session(op_model(w)).run(None, {"X": x})
    y2, _ = library_session(op_model(w, block_mask=True)).run(None, {"X": x})
    np.testing.assert_array_equal(y, y2)


def test_weights_that_are_not_initializers_are_packed_per_run() -> None:
    w = weights()
    x = tokens(20, D)
    session = library_session(op_model(w, weights_as_inputs=True))
    (y,) = session.run(None, {"X": x, **w})
    np.testing.assert_allclose(y, reference(w, x)[0], atol=1e-4)
    other = weights(seed=5)
    (y_other,) = session.run(None, {"X": x, **other})
    np.testing.assert_allclose(y_other, reference(other, x)[0], atol=1e-4)


def test_concurrent_runs_share_the_packed_weights_safely() -> None:
    w = weights()
    session = library_session(op_model(w))
    inputs = [tokens(500, D, seed=s) for s in range(4)]
    expected = [session.run(None, {"X": x})[0] for x in inputs]
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = [session.run(None, {"X": inputs[i]})[0] for _ in range(5)]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for i, runs in results.items():
        for y in runs:
            np.testing.assert_array_equal(y, expected[i])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("threading_mode", ["onnxruntime", "openmp"])
def test_results_do_not_depend_on_threads(threads: int, threading_mode: str) -> None:
    w = weights()
    x = tokens(700, D)
    (y,) = library_session(op_model(w), threads=threads, threading=threading_mode).run(None, {"X": x})
    np.testing.assert_allclose(y, reference(w, x)[0], atol=1e-4)


# Bad inputs: an ONNX Runtime error naming the input and the problem


def _create_error(model: onnx.ModelProto) -> str:
    with pytest.raises(GsmlpError) as caught:
        library_session(model).run(None, {"X": tokens(4, D)})
    return str(caught.value)


def test_bad_attributes_are_named() -> None:
    w = weights()
    assert "block_size is missing or not an INT" in _create_error(op_model(w, block_size=None))
    assert "threshold is missing or not a FLOAT" in _create_error(op_model(w, threshold=None))
    assert "block_size must be an INT in [1, 2^31-1], got 0" in _create_error(op_model(w, block_size=0))
    assert "threshold is NaN" in _create_error(op_model(w, threshold=float("nan")))
    assert "block_mask_output must be 0 or 1, got 2" in _create_error(op_model(w, block_mask_output=2))
    assert "block_mask_output must be an INT" in _create_error(op_model(w, block_mask_output=1.0))
    message = _create_error(op_model(w, block_mask_output=1))
    assert "block_mask_output = 1 but the node has 1 output" in message
    assert 'plugin_namespace is "x"' in _create_error(op_model(w, plugin_namespace="x"))
    assert "node 'ffn'" in message


def test_bad_weights_are_named_when_the_session_is_created() -> None:
    w = weights()
    cases = {
        "input W1 must have 2 dimensions, got [72]": {"W1": w["W1"][:, 0]},
        "d_model: X.shape[1] = 32 but W1.shape[1] = 31": {"W1": w["W1"][:, :31]},
        "hidden: W1.shape[0] = 72 but W2.shape[1] = 70": {"W2": w["W2"][:, :70]},
        "gate rank: GateDown.shape[0] = 8 but GateUp.shape[1] = 7": {"GateUp": w["GateUp"][:, :7]},
        "GateUp.shape[0] = 4 blocks, but hidden 72 with block_size 16 makes ceil(72/16) = 5": {
            "GateUp": w["GateUp"][:4],
            "GateBias": w["GateBias"][:4],
        },
    }
    for expected, change in cases.items():
        assert expected in _create_error(op_model({**w, **change})), expected


def test_unsupported_dtypes_are_named() -> None:
    w = weights()
    model = op_model(w)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    for tensor in model.graph.initializer:
        tensor.CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float64), tensor.name)
        )
    assert "input X has data type double" in _create_error(model)
    mixed = op_model(w)
    mixed.graph.initializer[0].CopyFrom(numpy_helper.from_array(w["W1"].astype(np.float16), "W1"))
    assert "input W1 has data type float16 but X has float32" in _create_error(mixed)


def test_a_bad_x_at_run_time_is_named_not_a_crash() -> None:
    session = library_session(op_model(weights(), x_shape=None))  # X's shape is unknown until the run
    with pytest.raises(Exception, match=r"d_model: X.shape\[1\] = 31 but W1.shape\[1\] = 32"):
        session.run(None, {"X": tokens(4, 31)})
    with pytest.raises(Exception, match="input X must have at least 1 dimension"):
        session.run(None, {"X": np.array(1.0, dtype=np.float32)})
    (y,) = session.run(None, {"X": tokens(4, D)})  # the session still works
    assert y.shape == (4, D)


def test_bad_threading_config_is_named() -> None:
    model = op_model(weights()).SerializeToString()
    options = ort_session.session_options(op_library())
    options.add_session_config_entry(ort_session.CONFIG_CPU_WORKERS, "many")
    import onnxruntime as ort

    with pytest.raises(Exception, match='gsmlp.cpu_workers is "many"'):
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


# Threads: ONNX Runtime's, not a second pool

_THREAD_PROBE = """
import os, sys, numpy as np
from gsmlp.runtime.ort_session import open_session
model, threading_mode = open(sys.argv[1], "rb").read(), sys.argv[2]
session = open_session(model, op="library", threads=2, threading=threading_mode, use_cuda=False).session
x = np.random.default_rng(0).standard_normal((2000, 32)).astype(np.float32)
session.run(None, {"X": x})
before = len(os.listdir("/proc/self/task"))
for _ in range(3):
    session.run(None, {"X": x})
print(before, len(os.listdir("/proc/self/task")), int("torch" in sys.modules), flush=True)
# openmp mode can crash at exit (plugins/onnxruntime/README.md, known issues): not what this counts
os._exit(0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/task (Linux)")
def test_the_kernel_runs_on_onnxruntimes_threads_and_starts_none(tmp_path: Path) -> None:
    # torch is not imported in the probe: any thread the runs start is the kernel's own.
    path = tmp_path / "op.onnx"
    path.write_bytes(op_model(weights()).SerializeToString())
    counts = {}
    for mode in ("onnxruntime", "openmp"):
        probe = subprocess.run(
            [sys.executable, "-c", _THREAD_PROBE, str(path), mode],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr
        counts[mode] = [int(v) for v in probe.stdout.split()]
    before, after, torch_loaded = counts["onnxruntime"]
    assert torch_loaded == 0  # open_session is deploy-time code: no torch
    assert after == before  # ORT's pool exists since session creation; the kernel adds no thread
    # The same probe sees OpenMP's team when the kernel is told to use it: the check can fail.
    assert counts["openmp"][0] > before


# Reading the decisions through expose_block_masks


def test_expose_block_masks_gives_the_librarys_and_the_bodys_decisions() -> None:
    w = weights()
    x = tokens(64, D)
    exposed, names = expose_block_masks(op_model(w))
    assert names == ["gsmlp.block_mask:ffn"]
    model = exposed.SerializeToString()
    library = open_session(model, op="library", use_cuda=False).session.run(None, {"X": x})
    body = open_session(model, op="function").session.run(None, {"X": x})
    _, mask_ref = reference(w, x)
    np.testing.assert_array_equal(library[1], mask_ref)
    np.testing.assert_array_equal(body[1], mask_ref)
    np.testing.assert_allclose(library[0], body[0], atol=1e-5)


# The CUDA execution provider


def _cuda_provider_missing() -> str | None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime has no CUDA execution provider (install onnxruntime-gpu)"
    if not kernels.cuda_built():
        return "the kernel library was built without the CUDA toolkit"
    if not kernels.cuda_available():
        return "no CUDA GPU is visible"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_provider_missing() is not None, reason=str(_cuda_provider_missing()))
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_cuda_provider_runs_the_cuda_kernels(dtype: str) -> None:
    w = weights()
    x = tokens(1000, D).astype(FP[dtype][0])
    opened = open_session(
        op_model(w, dtype=dtype, block_mask=True).SerializeToString(), op="library", use_cuda=True
    )
    assert opened.implementation == "gsmlp op library (CUDA)"
    y, mask = opened.session.run(None, {"X": x})
    y_ref, mask_ref = reference({k: v.astype(FP[dtype][0]) for k, v in w.items()}, x)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_allclose(y.astype(np.float32), y_ref, atol=1e-4 if dtype == "fp32" else 3e-3)
    empty = opened.session.run(None, {"X": np.zeros((0, D), FP[dtype][0])})
    assert empty[0].shape == (0, D)
