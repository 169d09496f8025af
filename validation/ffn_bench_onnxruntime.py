"""`gsmlp bench ffn --backend onnxruntime`: GatedSparseMLP through the gsmlp ONNX Runtime op library against
the dense FFN as ONNX Runtime runs it (MatMul-Add-Relu-MatMul-Add), both as single-node graphs in sessions
with the same threads and dtype, timed interleaved in one run (validation.ffn_bench.time_pair).

The weights and the per-token random masks are those of `gsmlp bench ffn` (validation.ffn_bench), so the two
backends' figures describe the same problems.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from gsmlp.errors import NotBuiltError
from gsmlp.exporter.op_function import gated_sparse_mlp_function
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.op_identity import BLOCK_MASK_ATTRIBUTE, DOMAIN, DOMAIN_VERSION, INPUTS, OP_TYPE
from gsmlp.runtime.ort_session import op_library, open_session, why_no_library
from gsmlp.validation.ffn_bench import Case, synthetic_problem, time_pair

ONNX_TYPES = {"fp32": (np.float32, TensorProto.FLOAT), "fp16": (np.float16, TensorProto.FLOAT16)}


def _weights(layer: GatedSparseMLP) -> dict[str, np.ndarray]:
    g = layer.gate
    tensors = [layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias, g.down.weight, g.up.weight,
               g.up.bias]  # fmt: skip
    return {name: t.detach().float().numpy() for name, t in zip(INPUTS[1:], tensors, strict=True)}


def _model(nodes, inputs, outputs, initializers, functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "ffn", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    return helper.make_model(graph, opset_imports=opsets, functions=list(functions), ir_version=9)


def op_graph(
    layer: GatedSparseMLP, threshold: float, dtype: str, block_mask: bool = False
) -> onnx.ModelProto:
    """One GatedSparseMLP node as the exporter writes it (weights as initializers, X [tokens, d_model])."""
    np_type, onnx_type = ONNX_TYPES[dtype]
    outputs = ["Y", "BlockMask"] if block_mask else ["Y"]
    attributes = dict(
        block_size=layer.block_size, threshold=threshold, plugin_version="1", plugin_namespace=""
    )
    if block_mask:
        attributes[BLOCK_MASK_ATTRIBUTE] = 1
    node = helper.make_node(OP_TYPE, list(INPUTS), outputs, domain=DOMAIN, name="ffn", **attributes)
    weights = [numpy_helper.from_array(v.astype(np_type), k) for k, v in _weights(layer).items()]
    graph_outputs = [helper.make_tensor_value_info("Y", onnx_type, ["tokens", layer.d_model])]
    if block_mask:
        graph_outputs.append(
            helper.make_tensor_value_info("BlockMask", TensorProto.BOOL, ["tokens", layer.num_blocks])
        )
    x = helper.make_tensor_value_info("X", onnx_type, ["tokens", layer.d_model])
    return _model([node], [x], graph_outputs, weights, [gated_sparse_mlp_function(block_mask)])


def dense_graph(layer: GatedSparseMLP, dtype: str) -> onnx.ModelProto:
    """fc2(relu(fc1(x))) in standard ops, the weights stored transposed so the MatMuls need no Transpose."""
    np_type, onnx_type = ONNX_TYPES[dtype]
    w = _weights(layer)
    weights = {"W1T": w["W1"].T, "B1": w["B1"], "W2T": w["W2"].T, "B2": w["B2"]}
    nodes = [
        helper.make_node("MatMul", ["X", "W1T"], ["pre_mm"]),
        helper.make_node("Add", ["pre_mm", "B1"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["h"]),
        helper.make_node("MatMul", ["h", "W2T"], ["out_mm"]),
        helper.make_node("Add", ["out_mm", "B2"], ["Y"]),
    ]
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(v).astype(np_type), k) for k, v in weights.items()
    ]
    x = helper.make_tensor_value_info("X", onnx_type, ["tokens", layer.d_model])
    y = helper.make_tensor_value_info("Y", onnx_type, ["tokens", layer.d_model])
    return _model(nodes, [x], [y], initializers)


def check_runnable() -> None:
    if op_library() is None:
        raise NotBuiltError(f"--backend onnxruntime: {why_no_library()}")


def bench_session(model: onnx.ModelProto, op: str, threads: int, threading: str = "onnxruntime") -> Any:
    """A CPU InferenceSession for timing runs that alternate with another session's.

    No spinning: each session has its own pool, and one pool's spinning threads would take the cores from
    the other's millisecond-long run.
    """
    opened = open_session(
        model.SerializeToString(), op=op, threads=threads, use_cuda=False, threading=threading, spin=False
    )
    return opened.session


def measure(
    name: str, layer: GatedSparseMLP, x: np.ndarray, threshold: float, *, dtype: str, threads: int,
    repeat: int, warmup: int, target: float | None = None, threading: str = "onnxruntime",
) -> Case:  # fmt: skip
    """Time the op (library, no BlockMask output) against the dense subgraph, same threads and dtype."""
    sparse = bench_session(op_graph(layer, threshold, dtype), "library", threads, threading)
    dense = bench_session(dense_graph(layer, dtype), "function", threads)
    probe = bench_session(op_graph(layer, threshold, dtype, block_mask=True), "library", threads)
    (_, mask) = probe.run(None, {"X": x})  # the kernel's own decisions: the measured sparsity
    feeds = {"X": x}
    dense_ms, sparse_ms = time_pair(
        lambda: dense.run(None, feeds), lambda: sparse.run(None, feeds), torch.device("cpu"), repeat, warmup
    )
    sparsity = round(1.0 - float(mask.mean()), 4)
    return Case(
        name, x.shape[0], layer.d_model, layer.hidden, layer.block_size, sparsity, target, dtype, "cpu",
        threads, round(dense_ms, 3), round(sparse_ms, 3), round(dense_ms / sparse_ms, 3), None,
        backend="onnxruntime",
    )  # fmt: skip


def synthetic_cases(
    *, dtype: str, threads: int, repeat: int, warmup: int, block_size: int, rank: int, shapes: list[str],
    sparsities: list[float], progress=None, threading: str = "onnxruntime",
) -> list[Case]:  # fmt: skip
    """The shapes x sparsities grid of `gsmlp bench ffn`, in ONNX Runtime."""
    cases = []
    for shape in shapes:
        layer, x, thresholds = synthetic_problem(shape, block_size, rank, sparsities)
        x_np = x.numpy().astype(ONNX_TYPES[dtype][0])
        for sparsity in sparsities:
            case = measure(
                shape, layer, x_np, thresholds[sparsity], dtype=dtype, threads=threads, repeat=repeat,
                warmup=warmup, target=sparsity, threading=threading,
            )  # fmt: skip
            cases.append(case)
            if progress:
                progress(case)
    return cases
