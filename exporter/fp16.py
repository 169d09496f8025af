"""Strongly typed fp16 ONNX: every float tensor in fp16 except where precision needs fp32.

TensorRT 11 has no FP16 builder flag; an fp16 engine comes from a graph whose tensors are fp16. Inputs and
outputs stay float32 (a Cast at each end) so every backend keeps one interface.

Some nodes stay float32: they compute in fp32 on fp32 tensors, their own constants and weights unrounded,
and a Cast sits on each edge between them and the fp16 nodes. `KEEP_FP32_OPS` are kept in every file:
LayerNormalization and Softmax, whose reductions (variance, sum of exponentials) lose the most in fp16.
`convert_to_fp16(model, keep_fp32=...)` keeps any other nodes too: the exporter keeps Deformable DETR's
sampling-position arithmetic (gsmlp.exporter.node_groups), and benchmarks/fp16_error.py uses it to find the
nodes that carry the fp16 error. The measurements behind these choices are in docs/EXPORT.md and
docs/VALIDATION.md ("fp16: where the Deformable error comes from").
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto, helper

from gsmlp.exporter.retype import convert_tensor, retype_node

KEEP_FP32_OPS = frozenset({"LayerNormalization", "Softmax"})
# Inputs the ONNX spec types as float32 whatever the data type (Resize: scales).
FLOAT32_ONLY_INPUTS = {"Resize": (2,)}
# Ops that read their inputs' shape or any type: a float input needs no Cast to their side.
ANY_TYPE_INPUTS = frozenset({"Cast", "Shape", "Size"})

NodeFilter = Callable[[onnx.NodeProto], bool]


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Every float32 tensor of the graph (inferred through the model's local functions)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    values = [*graph.value_info, *graph.input, *graph.output]
    floats = {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    return floats | {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}


class _Casts:
    """One Cast per tensor and direction, placed before the first node that reads it."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, bool], str] = {}

    def get(self, name: str, to_fp32: bool, pending: list[onnx.NodeProto]) -> str:
        key = (name, to_fp32)
        if key not in self.made:
            target = f"{name}__{'fp32' if to_fp32 else 'fp16'}"
            to = TensorProto.FLOAT if to_fp32 else TensorProto.FLOAT16
            pending.append(helper.make_node("Cast", [name], [target], to=to, name=f"{target}/cast"))
            self.made[key] = target
        return self.made[key]


def _wants_fp32(node: onnx.NodeProto, index: int, wide: bool) -> bool:
    return wide or index in FLOAT32_ONLY_INPUTS.get(node.op_type, ())


def _rewrite_nodes(
    graph: onnx.GraphProto, floats: set[str], wide: list[bool], wide_inits: set[str]
) -> tuple[list[onnx.NodeProto], set[str]]:
    """Retype the fp16 nodes, and cast every float edge whose two ends sit on different sides."""
    fp32_side = {value.name for value in graph.input} | wide_inits
    fp32_side |= {o for node, w in zip(graph.node, wide, strict=True) if w for o in node.output}
    casts: _Casts = _Casts()
    nodes: list[onnx.NodeProto] = []
    for node, w in zip(graph.node, wide, strict=True):
        if not w:
            retype_node(node, TensorProto.FLOAT, TensorProto.FLOAT16)
        pending: list[onnx.NodeProto] = []
        for index, name in enumerate(node.input):
            if name not in floats or node.op_type in ANY_TYPE_INPUTS:
                continue
            wants = _wants_fp32(node, index, w)
            if wants != (name in fp32_side):
                node.input[index] = casts.get(name, wants, pending)
        nodes.extend([*pending, node])
    return nodes, fp32_side


def _outputs_to_fp32(graph: onnx.GraphProto, nodes: list[onnx.NodeProto], fp32_side: set[str]) -> None:
    """A float graph output computed in fp16 is renamed inside and cast back to float32 at the end."""
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT or value.name in fp32_side:
            continue
        narrow = f"{value.name}__fp16"
        for node in nodes:
            node.output[:] = [narrow if name == value.name else name for name in node.output]
            node.input[:] = [narrow if name == value.name else name for name in node.input]
        nodes.append(
            helper.make_node(
                "Cast", [narrow], [value.name], to=TensorProto.FLOAT, name=f"{value.name}/to_fp32"
            )
        )


def convert_to_fp16(model: onnx.ModelProto, keep_fp32: NodeFilter | None = None) -> onnx.ModelProto:
    """Convert a float32 graph in place to strongly typed fp16 with float32 inputs and outputs.

    Nodes of KEEP_FP32_OPS, and those `keep_fp32` selects, stay float32 (their weights too).
    """
    graph = model.graph
    floats = _float_tensors(model)
    wide = [node.op_type in KEEP_FP32_OPS or bool(keep_fp32 and keep_fp32(node)) for node in graph.node]
    readers: dict[str, list[bool]] = {}
    for node, w in zip(graph.node, wide, strict=True):
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append(_wants_fp32(node, index, w))
    # An initializer stays float32 when a float32 node reads it (fp16 readers then get a Cast).
    wide_inits = {i.name for i in graph.initializer if any(readers.get(i.name, ()))}
    for index, initializer in enumerate(graph.initializer):
        if initializer.data_type == TensorProto.FLOAT and initializer.name not in wide_inits:
            graph.initializer[index].CopyFrom(convert_tensor(initializer, TensorProto.FLOAT16))
    del graph.value_info[:]  # recomputed by shape inference; stale float32 types would contradict
    nodes, fp32_side = _rewrite_nodes(graph, floats, wide, wide_inits)
    _outputs_to_fp32(graph, nodes, fp32_side)
    del graph.node[:]
    graph.node.extend(nodes)
    return model
