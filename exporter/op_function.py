"""The ONNX local function `gsmlp::GatedSparseMLP`: the op contract (docs/op_spec.md) in standard ops.

A runtime with no kernel for the op (ONNX Runtime, TensorRT without the plugin) inlines this body, so the
exported file runs everywhere. The body is dtype-generic (CastLike instead of typed constants), so the same
function serves fp32 and fp16 graphs.
"""

from __future__ import annotations

import onnx
from onnx import helper

from gsmlp.op_identity import (
    ATTRIBUTES,
    BLOCK_MASK_ATTRIBUTE,
    DOMAIN,
    INPUTS,
    ONNX_OPSET,
    OP_TYPE,
    OUTPUTS,
)


def _constant_from_attribute(output: str, value_kind: str, attribute: str, kind: int) -> onnx.NodeProto:
    """A Constant whose value is the calling node's attribute (ref_attr_name), not a copy of it."""
    node = helper.make_node("Constant", [], [output])
    ref = onnx.AttributeProto(name=value_kind, ref_attr_name=attribute, type=kind)
    node.attribute.append(ref)
    return node


def _linear(x: str, weight: str, bias: str, out: str) -> list[onnx.NodeProto]:
    """x @ weight^T + bias, with torch's [out, in] weight layout kept as the op's input layout."""
    return [
        helper.make_node("Transpose", [weight], [f"{out}_wt"], perm=[1, 0]),
        helper.make_node("MatMul", [x, f"{out}_wt"], [f"{out}_mm"]),
        helper.make_node("Add", [f"{out}_mm", bias], [out]),
    ]


def gate_nodes() -> list[onnx.NodeProto]:
    """logits = GateUp (GateDown x) + GateBias; active = NOT(logits <= threshold): NaN stays active.

    `block_on` ([..., NB]) is also the optional output BlockMask: the decisions the body itself took.
    """
    return [
        helper.make_node("Transpose", ["GateDown"], ["gate_down_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["X", "gate_down_t"], ["gate_low"]),
        *_linear("gate_low", "GateUp", "GateBias", "gate_logits"),
        _constant_from_attribute("threshold_f32", "value_float", "threshold", onnx.AttributeProto.FLOAT),
        helper.make_node("CastLike", ["threshold_f32", "gate_logits"], ["threshold_t"]),
        helper.make_node("LessOrEqual", ["gate_logits", "threshold_t"], ["block_off"]),
        helper.make_node("Not", ["block_off"], ["block_on"]),
    ]


def _neuron_mask_nodes() -> list[onnx.NodeProto]:
    """Neuron i belongs to block i // block_size: gather the block flags per neuron ([..., H] bool)."""
    return [
        _constant_from_attribute("block_size_i64", "value_int", "block_size", onnx.AttributeProto.INT),
        helper.make_node("Shape", ["W1"], ["w1_shape"], start=0, end=1),
        helper.make_node("Constant", [], ["zero_i64"], value_int=0),
        helper.make_node("Constant", [], ["one_i64"], value_int=1),
        helper.make_node("Squeeze", ["w1_shape"], ["hidden"]),
        helper.make_node("Range", ["zero_i64", "hidden", "one_i64"], ["neuron_index"]),
        helper.make_node("Div", ["neuron_index", "block_size_i64"], ["neuron_block"]),
        helper.make_node("Gather", ["block_on", "neuron_block"], ["neuron_on"], axis=-1),
    ]


def _ffn_nodes() -> list[onnx.NodeProto]:
    """h = relu(W1 x + B1); skipped neurons selected to zero (never multiplied); Y = W2 h + B2."""
    return [
        *_linear("X", "W1", "B1", "pre"),
        helper.make_node("Relu", ["pre"], ["h"]),
        helper.make_node("Constant", [], ["zero_f32"], value_float=0.0),
        helper.make_node("CastLike", ["zero_f32", "h"], ["zero_t"]),
        helper.make_node("Where", ["neuron_on", "h", "zero_t"], ["h_masked"]),
        *_linear("h_masked", "W2", "B2", "Y"),
    ]


def gated_sparse_mlp_function(block_mask: bool = False) -> onnx.FunctionProto:
    """The FunctionProto every exported gated model carries (domain gsmlp, name GatedSparseMLP).

    block_mask: also output BlockMask, the gate's own block decisions ([..., NB] bool). Exported files carry
    the one-output function; `expose_block_masks` (exporter/graph.py) switches an in-memory copy to this one.
    """
    nodes = [*gate_nodes(), *_neuron_mask_nodes(), *_ffn_nodes()]
    if block_mask:
        nodes.append(helper.make_node("Identity", ["block_on"], [OUTPUTS[1]]))
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        inputs=list(INPUTS),
        outputs=list(OUTPUTS if block_mask else OUTPUTS[:1]),
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        attributes=[*ATTRIBUTES, BLOCK_MASK_ATTRIBUTE] if block_mask else list(ATTRIBUTES),
        doc_string="Y = W2 (mask ? relu(W1 X + B1) : 0) + B2; block j on iff NOT(gate_logit_j <= threshold).",
    )
