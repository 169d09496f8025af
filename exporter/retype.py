"""Rewrite the float element type of constants and casts across a whole graph.

Used twice: to demote float64 (the TorchScript exporter writes `linspace` in double, which leaves
Deformable DETR's sampling grid in float64 where PyTorch computed float32, and ONNX Runtime has no
float64 GridSample), and by the fp16 conversion.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}


def convert_tensor(tensor: onnx.TensorProto, to: int) -> onnx.TensorProto:
    """A copy of `tensor` in element type `to`, with finite values clipped to the target's range."""
    values = numpy_helper.to_array(tensor)
    target = _NUMPY[to]
    info = np.finfo(target)
    # Large finite sentinels (e.g. float32 min used as -inf in masks) must stay finite, not overflow.
    finite = np.isfinite(values)
    clipped = np.where(finite, np.clip(values, info.min, info.max), values)
    return numpy_helper.from_array(clipped.astype(target), tensor.name)


def _retype_attribute(attribute: onnx.AttributeProto, source: int, to: int) -> None:
    if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == source:
        attribute.t.CopyFrom(convert_tensor(attribute.t, to))


def retype_node(node: onnx.NodeProto, source: int, to: int) -> None:
    """Casts to `source` now cast to `to`; tensor-valued constants of type `source` become `to`."""
    for attribute in node.attribute:
        if node.op_type == "Cast" and attribute.name == "to" and attribute.i == source:
            attribute.i = to
        _retype_attribute(attribute, source, to)


def retype_graph(graph: onnx.GraphProto, source: int, to: int, skip: set[str] | None = None) -> None:
    """Apply retype_node to every node (except those named in `skip`) and every initializer."""
    skip = skip or set()
    for node in graph.node:
        if node.name not in skip:
            retype_node(node, source, to)
    for index, initializer in enumerate(graph.initializer):
        if initializer.data_type == source and initializer.name not in skip:
            graph.initializer[index].CopyFrom(convert_tensor(initializer, to))
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == source and value.name not in skip:
            value.type.tensor_type.elem_type = to


def demote_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    retype_graph(model.graph, TensorProto.DOUBLE, TensorProto.FLOAT)
    return model
