"""Finishing touches on a traced graph: the local functions, the gsmlp opset, metadata, the checker."""

from __future__ import annotations

import math
from collections.abc import Collection

import onnx
from onnx import helper

from gsmlp.errors import GsmlpError
from gsmlp.exporter.op_function import gated_sparse_mlp_function
from gsmlp.exporter.sampling_function import multi_scale_deformable_attention_function
from gsmlp.op_identity import (
    BLOCK_MASK_ATTRIBUTE,
    BLOCK_MASK_OUTPUT_PREFIX,
    DOMAIN,
    DOMAIN_VERSION,
    MSDA_OP_TYPE,
    OP_TYPE,
)


def op_nodes(model: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    """The main graph's nodes of one gsmlp op."""
    return [node for node in model.graph.node if node.domain == DOMAIN and node.op_type == op_type]


def gated_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The GatedSparseMLP nodes (never the MultiScaleDeformableAttention ones, which share the domain)."""
    return op_nodes(model, OP_TYPE)


def sampling_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The MultiScaleDeformableAttention nodes: one per deformable attention of a `--sampling op` file."""
    return op_nodes(model, MSDA_OP_TYPE)


def has_function(model: onnx.ModelProto, op_type: str = OP_TYPE) -> bool:
    return any(f.domain == DOMAIN and f.name == op_type for f in model.functions)


def _set_opset(model: onnx.ModelProto, domain: str, version: int) -> None:
    for opset in model.opset_import:
        if opset.domain == domain:
            opset.version = version
            return
    model.opset_import.append(helper.make_opsetid(domain, version))


def materialize_shared_initializers(model: onnx.ModelProto) -> None:
    """Replace Identity(initializer) by its own initializer.

    The TorchScript exporter deduplicates equal weights (e.g. two zero biases) into one initializer plus
    Identity nodes; the op contract and TensorRT's plugin binding want every weight input to be an
    initializer.
    """
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _sampling_function(levels: Collection[int], nodes: int) -> onnx.FunctionProto:
    """The one MultiScaleDeformableAttention body of a file: its structure is fixed by the level count."""
    if len(set(levels)) != 1:
        raise GsmlpError(
            f"the model's {nodes} deformable attentions sample {sorted(set(levels)) or 'unknown'} feature "
            f"levels; a file holds one {DOMAIN}::{MSDA_OP_TYPE} function, whose structure fixes the level "
            "count, so every attention must sample the same number: export with --sampling inline"
        )
    return multi_scale_deformable_attention_function(next(iter(levels)))


def attach_functions(model: onnx.ModelProto, sampling_levels: Collection[int] = ()) -> onnx.ModelProto:
    """Attach the local function of each gsmlp op the graph uses (and the gsmlp opset), in place.

    sampling_levels: the level counts of the MultiScaleDeformableAttention nodes (one value in a valid file).
    """
    materialize_shared_initializers(model)
    del model.functions[:]
    if gated_nodes(model):
        model.functions.append(gated_sparse_mlp_function())
    if sampling_nodes(model):
        model.functions.append(_sampling_function(sampling_levels, len(sampling_nodes(model))))
    if model.functions:
        _set_opset(model, DOMAIN, DOMAIN_VERSION)
    else:
        kept = [o for o in model.opset_import if o.domain != DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return model


def finish_model(model: onnx.ModelProto, *, metadata: dict[str, str]) -> onnx.ModelProto:
    """Record metadata and the producer, and run the full checker (after attach_functions)."""
    helper.set_model_props(model, metadata)
    model.producer_name = "gsmlp"
    check_gated_attributes(model, "the exported model")  # what is written is checked as it is read
    onnx.checker.check_model(model, full_check=True)
    return model


def check_gated_attributes(model: onnx.ModelProto, where: str) -> None:
    """Every GatedSparseMLP node's hyper-parameters as the op contract has them (docs/op_spec.md): an INT
    block_size >= 1 and a finite FLOAT threshold. A NaN threshold would turn every block on, silently."""
    for node in gated_nodes(model):
        values = {a.name: a for a in node.attribute}
        block, threshold = values.get("block_size"), values.get("threshold")
        if block is None or block.type != onnx.AttributeProto.INT or block.i < 1:
            shown = helper.get_attribute_value(block) if block is not None else "missing"
            raise GsmlpError(
                f"{where}: {OP_TYPE} node {node.name!r} has block_size {shown!r}; need an int >= 1"
            )
        if threshold is None or threshold.type != onnx.AttributeProto.FLOAT or not math.isfinite(threshold.f):
            shown = helper.get_attribute_value(threshold) if threshold is not None else "missing"
            raise GsmlpError(
                f"{where}: {OP_TYPE} node {node.name!r} has threshold {shown!r}; need a finite float"
            )


def check_loadable(model: onnx.ModelProto, path: str) -> None:
    """Every gsmlp node needs its op's function body, or no runtime without the plugin can run it."""
    for op_type in (OP_TYPE, MSDA_OP_TYPE):
        nodes = op_nodes(model, op_type)
        if nodes and not has_function(model, op_type):
            raise GsmlpError(
                f"{path} has {len(nodes)} {DOMAIN}::{op_type} nodes but no {DOMAIN}::{op_type} local "
                "function, so ONNX Runtime cannot run it; re-export it with `gsmlp export`"
            )
    check_gated_attributes(model, path)


def expose_block_masks(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy in which every GatedSparseMLP node also outputs BlockMask, its own gate decisions, as a graph
    output named BLOCK_MASK_OUTPUT_PREFIX + the node's name; and those names.

    The node gains output 1 and `block_mask_output = 1` (the attribute tells a TensorRT plugin, which cannot
    see the node's outputs, to have two), and the local function becomes its two-output form, so the library,
    the plugin and the inlined body all report the decisions they took. The file itself is not changed.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    names = []
    for index, node in enumerate(gated_nodes(copy)):
        if len(node.output) > 1:
            continue  # already exposed
        name = BLOCK_MASK_OUTPUT_PREFIX + (node.name or f"node{index}")
        node.output.append(name)
        node.attribute.append(helper.make_attribute(BLOCK_MASK_ATTRIBUTE, 1))
        copy.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.BOOL, None))
        names.append(name)
    if names and has_function(copy):
        kept = [f for f in copy.functions if not (f.domain == DOMAIN and f.name == OP_TYPE)]
        del copy.functions[:]
        copy.functions.extend([*kept, gated_sparse_mlp_function(block_mask=True)])
    return copy, names
