"""Strongly typed fp16 ONNX: every float tensor in fp16 except where precision needs fp32.

TensorRT 11 has no FP16 builder flag; an fp16 engine comes from a graph whose tensors are fp16. Inputs and
outputs stay float32 (a Cast at each end) so every backend keeps one interface. LayerNormalization and
Softmax run in fp32 between Casts: their reductions (variance, sum of exponentials) lose the most in fp16.
The measurements behind these choices are in docs/EXPORT.md.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from gsmlp.exporter.retype import retype_graph

KEEP_FP32_OPS = frozenset({"LayerNormalization", "Softmax"})
# Inputs the ONNX spec types as float32 whatever the data type (Resize: scales).
FLOAT32_ONLY_INPUTS = {"Resize": (2,)}


def _cast(source: str, target: str, to: int, name: str) -> onnx.NodeProto:
    return helper.make_node("Cast", [source], [target], to=to, name=name)


def _wrap_in_fp32(node: onnx.NodeProto, float_inputs: list[int]) -> list[onnx.NodeProto]:
    """Cast the node's float inputs up and its outputs back down."""
    before, after = [], []
    for index in float_inputs:
        original = node.input[index]
        upcast = f"{original}__fp32_for_{node.name}"
        before.append(_cast(original, upcast, TensorProto.FLOAT, f"{node.name}/to_fp32_{index}"))
        node.input[index] = upcast
    for index, original in enumerate(node.output):
        wide = f"{original}__fp32"
        node.output[index] = wide
        after.append(_cast(wide, original, TensorProto.FLOAT16, f"{node.name}/to_fp16_{index}"))
    return [*before, node, *after]


def _float32_only(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    before = []
    for index in FLOAT32_ONLY_INPUTS.get(node.op_type, ()):
        if index < len(node.input) and node.input[index]:
            original = node.input[index]
            node.input[index] = f"{original}__fp32_for_{node.name}"
            before.append(_cast(original, node.input[index], TensorProto.FLOAT, f"{node.name}/scales_fp32"))
    return [*before, node]


def _rewrite_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type in KEEP_FP32_OPS:
            float_inputs = (
                [0] if node.op_type == "Softmax" else [i for i in range(len(node.input)) if node.input[i]]
            )
            nodes.extend(_wrap_in_fp32(node, float_inputs))
        else:
            nodes.extend(_float32_only(node))
    return nodes


def _fp32_interface(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Float inputs are cast to fp16 on entry; float outputs are cast back to float32 on exit."""
    head, tail = [], []
    for value in graph.input:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
            narrow = f"{value.name}__fp16"
            for node in nodes:
                node.input[:] = [narrow if name == value.name else name for name in node.input]
            head.append(_cast(value.name, narrow, TensorProto.FLOAT16, f"{value.name}/to_fp16"))
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
            narrow = f"{value.name}__fp16"
            for node in nodes:
                node.output[:] = [narrow if name == value.name else name for name in node.output]
            tail.append(_cast(narrow, value.name, TensorProto.FLOAT, f"{value.name}/to_fp32"))
    return [*head, *nodes, *tail]


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert a float32 graph in place to strongly typed fp16 with float32 inputs and outputs."""
    graph = model.graph
    del graph.value_info[:]  # recomputed by shape inference; stale float32 types would contradict
    retype_graph(graph, TensorProto.FLOAT, TensorProto.FLOAT16)
    nodes = _fp32_interface(graph, _rewrite_nodes(graph))
    del graph.node[:]
    graph.node.extend(nodes)
    return model
