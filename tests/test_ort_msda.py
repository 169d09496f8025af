"""MultiScaleDeformableAttention in the gsmlp ONNX Runtime op library (plugins/onnxruntime/
multiScaleDeformableAttention/), through real single-node ONNX files and real ONNX Runtime: against
transformers' MultiScaleDeformableAttention, the torch op on the same kernel, and the node's own
local-function body; every dtype, empty outputs, level tables as inputs and as initializers, and bad inputs
(an error naming the node, the input and the problem, never a crash).

The library is built when GSMLP_ONNXRUNTIME_INCLUDE names the ONNX Runtime C API headers at install time
(.ci/run sets it); these tests skip, saying so, only where it was not built. The CUDA provider's test also
needs a GPU and onnxruntime-gpu's CUDA provider.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from gsmlp import kernels
from gsmlp.errors import GsmlpError
from gsmlp.op_identity import MSDA_INPUTS
from gsmlp.runtime.ort_session import op_library, open_session, why_no_library
from gsmlp.validation.msda_bench import Inputs, op_model, with_level_tables_as_initializers
from tests.test_kernels_msda import BOUND, CASES, FP16_RELATIVE, attention_case, transformers_reference
from tests.test_ort_library import _cuda_provider_missing

if op_library() is None:
    pytest.skip(why_no_library(), allow_module_level=True)


def library_session(model: onnx.ModelProto, threads: int = 2, use_cuda: bool = False):
    return open_session(model.SerializeToString(), op="library", threads=threads, use_cuda=use_cuda).session


def run_library(
    inputs, dtype: str = "fp32", threads: int = 2, model: onnx.ModelProto | None = None
) -> np.ndarray:
    case = Inputs(*inputs)
    model = model if model is not None else op_model(len(case.levels), dtype)
    return library_session(model, threads).run(None, case.feeds(dtype))[0]


def test_registered_under_the_exporters_identity_and_serves_nodes_without_a_body() -> None:
    inputs = CASES["four levels, locations outside [0, 1]"]()
    actual = run_library(inputs, model=op_model(4, function=False))  # only a registered kernel can run it
    assert np.abs(actual - transformers_reference(*inputs).numpy()).max() <= BOUND
    with pytest.raises(GsmlpError):
        open_session(op_model(4, function=False).SerializeToString(), op="function")


def test_the_library_takes_the_node_over_the_function_body() -> None:
    model = op_model(2)
    (version,) = [a for a in model.graph.node[0].attribute if a.name == "plugin_version"]
    version.s = b"2"  # refused by the library, ignored by the body
    with pytest.raises(GsmlpError, match='plugin_version is "2"; this library implements "1"'):
        library_session(model)
    inputs = Inputs(*attention_case([(4, 4), (2, 2)]))
    body = open_session(model.SerializeToString(), op="function").session.run(None, inputs.feeds("fp32"))[0]
    assert body.shape == (2, 30, 32)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_transformers_and_the_torch_op(case) -> None:
    inputs = case()
    actual = run_library(inputs)
    assert np.abs(actual - transformers_reference(*inputs).numpy()).max() <= BOUND
    # The same kernel as the torch op: nothing but the caller differs.
    assert np.array_equal(actual, kernels.multi_scale_deformable_attention(*inputs).numpy())


def test_matches_the_function_body_on_pixel_borders() -> None:
    from tests.test_kernels_msda import border_locations

    levels = [(4, 8), (2, 4), (2, 2), (1, 1)]
    value, shapes, starts, locations, weights = attention_case(levels, queries=64)
    inputs = (value, shapes, starts, border_locations(locations.shape, levels), weights)
    feeds = Inputs(*inputs).feeds("fp32")
    body = open_session(op_model(4).SerializeToString(), op="function").session.run(None, feeds)[0]
    library = run_library(inputs)
    assert np.abs(library - body).max() <= BOUND
    assert np.abs(library - transformers_reference(*inputs).numpy()).max() <= BOUND


def test_fp16_computes_in_fp32_and_rounds_once() -> None:
    inputs = [t.half() if t.is_floating_point() else t for t in CASES["batch 2 with padding"]()]
    expected = transformers_reference(*[t.double() if t.is_floating_point() else t for t in inputs]).numpy()
    actual = run_library([t.float() if t.is_floating_point() else t for t in inputs], dtype="fp16")
    assert actual.dtype == np.float16
    error = np.abs(actual.astype(np.float64) - expected)
    assert (error <= FP16_RELATIVE * np.abs(expected) + BOUND).all(), error.max()


@pytest.mark.parametrize(("batch", "queries"), [(2, 0), (0, 5)])
def test_empty_outputs(batch: int, queries: int) -> None:
    actual = run_library(attention_case([(4, 4), (2, 2)], batch=batch, queries=queries))
    assert actual.shape == (batch, queries, 32)


def test_level_tables_as_initializers_and_any_thread_count() -> None:
    inputs = Inputs(*attention_case([(12, 10), (6, 5), (3, 3)], queries=100))
    model = with_level_tables_as_initializers(op_model(3), inputs)
    feeds = {k: v for k, v in inputs.feeds("fp32").items() if k not in MSDA_INPUTS[1:3]}
    results = [library_session(model, threads).run(None, feeds)[0] for threads in (1, 2, 3)]
    assert all(np.array_equal(r, results[0]) for r in results)
    assert np.abs(results[0] - transformers_reference(*inputs.tensors()).numpy()).max() <= BOUND


# Bad inputs: an ONNX Runtime error naming the node, the input and the problem


def _run_error(inputs: Inputs, feeds: dict | None = None, model: onnx.ModelProto | None = None) -> str:
    model = model if model is not None else op_model(len(inputs.levels))
    with pytest.raises(Exception) as caught:
        library_session(model).run(None, feeds if feeds is not None else inputs.feeds("fp32"))
    return str(caught.value)


def test_level_tables_that_do_not_fit_value_name_the_node_and_both_numbers() -> None:
    inputs = Inputs(*attention_case([(6, 5), (3, 3)]))
    feeds = inputs.feeds("fp32")
    short = _run_error(inputs, {**feeds, "value": feeds["value"][:, :38]})
    assert "MultiScaleDeformableAttention node 'msda'" in short
    assert "value has S = 38 rows but the levels hold 39" in short
    shifted = _run_error(inputs, {**feeds, "level_start_index": np.array([0, 31], np.int32)})
    assert "level_start_index[1] is 31 but the levels before it hold 30" in shifted


def test_bad_shapes_and_types_are_named() -> None:
    inputs = Inputs(*attention_case([(6, 5), (3, 3)], heads=4))
    feeds = inputs.feeds("fp32")
    heads = _run_error(inputs, {**feeds, "attention_weights": feeds["attention_weights"][:, :, :3]})
    assert "heads M: value.shape[2] = 4 but attention_weights.shape[2] = 3" in heads
    levels = _run_error(inputs, {**feeds, "spatial_shapes": np.array([[6, 5]], np.int32)})
    assert "levels L: spatial_shapes.shape[0] = 1 but level_start_index.shape[0] = 2" in levels
    model = op_model(2)
    for graph_input in model.graph.input[1:3]:
        graph_input.type.tensor_type.elem_type = TensorProto.INT64
    int64 = {**feeds, "spatial_shapes": feeds["spatial_shapes"].astype(np.int64),
             "level_start_index": feeds["level_start_index"].astype(np.int64)}  # fmt: skip
    message = _run_error(inputs, int64, model)
    assert "input spatial_shapes has data type int64; the level tables are int32" in message
    mixed = op_model(2)
    mixed.graph.input[4].type.tensor_type.elem_type = TensorProto.FLOAT16
    # ONNX Runtime's own type check (one type for the op's float inputs) refuses it first, naming the types.
    message = _run_error(
        inputs, {**feeds, "attention_weights": feeds["attention_weights"].astype(np.float16)}, mixed
    )
    assert "float16" in message and "msda" in message


def test_static_shapes_that_do_not_fit_fail_when_the_session_is_created() -> None:
    model = op_model(2)
    dims = {"value": [2, 39, 4, 8], "sampling_locations": [2, 30, 3, 2, 3, 2]}
    for graph_input in model.graph.input:
        for i, size in enumerate(dims.get(graph_input.name, [])):
            graph_input.type.tensor_type.shape.dim[i].dim_value = size
    with pytest.raises(
        GsmlpError, match=r"heads M: value.shape\[2\] = 4 but sampling_locations.shape\[2\] = 3"
    ):
        library_session(model)


# Threads: ONNX Runtime's, not a second pool

_THREAD_PROBE = """
import os, sys
sys.path.append(".")
from gsmlp.runtime.ort_session import open_session
from gsmlp.validation.msda_bench import model_like_inputs, op_model, R50_LEVELS
inputs = model_like_inputs(R50_LEVELS[1:], 2000)
session = open_session(op_model(3).SerializeToString(), op="library", threads=2, use_cuda=False).session
feeds = inputs.feeds("fp32")
session.run(None, feeds)
before = len(os.listdir("/proc/self/task"))
for _ in range(3):
    session.run(None, feeds)
print(before, len(os.listdir("/proc/self/task")), flush=True)
os._exit(0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/task (Linux)")
def test_the_kernel_runs_on_onnxruntimes_threads_and_starts_none() -> None:
    repo = Path(__file__).resolve().parents[1]
    probe = subprocess.run([sys.executable, "-c", _THREAD_PROBE], capture_output=True, text=True, timeout=300,
                           cwd=repo)  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    before, after = (int(v) for v in probe.stdout.split())
    assert after == before  # ORT's pool exists since session creation; the kernel adds no thread


# The CUDA execution provider


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_provider_missing() is not None, reason=str(_cuda_provider_missing()))
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_cuda_provider_runs_the_cuda_kernel(dtype: str) -> None:
    inputs = CASES["batch 2 with padding"]()
    opened = open_session(op_model(3, dtype).SerializeToString(), op="library", use_cuda=True)
    actual = opened.session.run(None, Inputs(*inputs).feeds(dtype))[0].astype(np.float64)
    expected = transformers_reference(*inputs).numpy()
    bound = BOUND + (FP16_RELATIVE * np.abs(expected) + 2e-3 if dtype == "fp16" else 0)
    assert (np.abs(actual - expected) <= bound).all()
