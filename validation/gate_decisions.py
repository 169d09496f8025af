"""Gate decisions across backends: read another backend's decisions and pin PyTorch to them.

A gated FFN is discontinuous in its input. A token whose gate logit lies within rounding noise of the
threshold can switch a block on in one backend and off in the other, and that one flipped block changes
the outputs by far more than fp32 rounding. Parity of a gated model therefore has two parts:

- the computation: PyTorch re-runs each batch with the other backend's gate decisions pinned, and the
  outputs must then agree to the dtype's bound (`max_abs_diff`);
- the decisions: the fraction of gate decisions the two backends took differently (`flip_rate`) must
  stay under its own bound, and the COCO deltas show what the flips cost.

ONNX Runtime reports its own decisions: the input `X` of each `GatedSparseMLP` node becomes an extra
graph output, and a probe model made of the function body's own gate nodes, holding that node's gate
weights and threshold, runs on it in ONNX Runtime. The same kernels on the same values give the decisions
the inlined body took, in fp32 and in fp16 alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from gsmlp.exporter.graph import gated_nodes
from gsmlp.exporter.op_function import gate_nodes
from gsmlp.model.gated_mlp import GatedSparseMLP, active_blocks

if TYPE_CHECKING:  # backends imports this module: a runtime import would be circular
    from gsmlp.validation.backends import PyTorchBackend

# Backend outputs under this prefix carry one gated node's block decisions, keyed by the module's path.
GATE_DECISIONS_PREFIX = "gate_decisions:"
# The exporter traces the detector as the attribute `detector` of a wrapper module.
_TRACE_ROOT = "detector"


def _module_path(node: onnx.NodeProto) -> str | None:
    """'/detector/model/encoder/layers.0/mlp/GatedSparseMLP' -> 'model.encoder.layers.0.mlp'."""
    parts = node.name.strip("/").split("/")
    if len(parts) < 3 or parts[0] != _TRACE_ROOT or parts[-1] != node.op_type:
        return None
    return ".".join(parts[1:-1])


def with_gate_outputs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of the model that also outputs every gated node's X; and {tensor name: module path}."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    initializers = {i.name: i.data_type for i in copy.graph.initializer}
    outputs = {}
    for node in gated_nodes(copy):
        path = _module_path(node)
        if path is None or node.input[0] in outputs:
            continue
        # X has the weights' dtype (an fp16 graph keeps fp32 only at its inputs and outputs).
        dtype = initializers[node.input[1]]
        copy.graph.output.append(onnx.helper.make_tensor_value_info(node.input[0], dtype, None))
        outputs[node.input[0]] = path
    return copy, outputs


def gated_modules(model: nn.Module, paths: list[str]) -> dict[str, GatedSparseMLP]:
    """The modules named by the ONNX node paths; a path that names no gated module raises ValueError."""
    found = {}
    for path in paths:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            module = None
        if not isinstance(module, GatedSparseMLP) or module.mode != "gated":
            raise ValueError(f"the ONNX node of {path} has no gated GatedSparseMLP in the PyTorch model")
        found[path] = module
    return found


@contextmanager
def pinned(
    model: nn.Module, layers: dict[str, GatedSparseMLP], decisions: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Every layer takes the given block decisions instead of its gate's, for the duration.

    The sparsity meters pause meanwhile: a pinned re-run is a check, not part of the reference's run.
    """
    meters = [m.meter for m in model.modules() if isinstance(m, GatedSparseMLP)]
    enabled = [meter.enabled for meter in meters]
    try:
        for meter in meters:
            meter.enabled = False
        for path, layer in layers.items():
            layer.pinned_blocks = decisions[path]
        yield
    finally:
        for layer in layers.values():
            layer.pinned_blocks = None
        for meter, was in zip(meters, enabled, strict=True):
            meter.enabled = was


def gate_probe(proto: onnx.ModelProto, node: onnx.NodeProto) -> onnx.ModelProto:
    """X -> block_on of one node: the function body's gate nodes on that node's gate weights and threshold."""
    initializers = {i.name: i for i in proto.graph.initializer}
    weights = []
    for name, source in zip(("GateDown", "GateUp", "GateBias"), node.input[5:8], strict=True):
        tensor = onnx.TensorProto()
        tensor.CopyFrom(initializers[source])
        tensor.name = name
        weights.append(tensor)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    threshold = numpy_helper.from_array(
        np.asarray(attributes["threshold"], dtype=np.float32), "threshold_f32"
    )
    # The body's Constant reads the calling node's attribute; here it is an initializer instead.
    nodes = [n for n in gate_nodes() if list(n.output) != ["threshold_f32"]]
    graph = onnx.helper.make_graph(
        nodes,
        "gate_probe",
        [onnx.helper.make_tensor_value_info("X", weights[0].data_type, None)],
        [onnx.helper.make_tensor_value_info("block_on", onnx.TensorProto.BOOL, None)],
        initializer=[*weights, threshold],
    )
    opsets = [o for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    return onnx.helper.make_model(graph, opset_imports=opsets, ir_version=proto.ir_version)


def gate_probes(proto: onnx.ModelProto) -> dict[str, onnx.ModelProto]:
    """Module path -> the gate probe of its GatedSparseMLP node."""
    return {path: gate_probe(proto, node) for node in gated_nodes(proto) if (path := _module_path(node))}


def surviving_blocks(layer: GatedSparseMLP) -> torch.Tensor | None:
    """The module's blocks that SIBS folding kept, in order (None: all of them); see exporter/fold.py."""
    if layer.keep_mask is None:
        return None
    keep = F.pad(layer.keep_mask.bool(), (0, layer.num_blocks * layer.block_size - layer.hidden))
    return torch.nonzero(keep.view(layer.num_blocks, layer.block_size).any(-1)).flatten()


def module_decisions(node_decisions: np.ndarray, num_blocks: int, kept: torch.Tensor | None) -> torch.Tensor:
    """Exported-block decisions -> the module's `num_blocks`, given its `surviving_blocks` (a block SIBS
    removed whole stays off)."""
    exported = torch.from_numpy(node_decisions)
    if kept is None:
        return exported
    full = torch.zeros((*exported.shape[:-1], num_blocks), dtype=torch.bool)
    full[..., kept] = exported
    return full


class PinnedReference:
    """Re-runs the reference backend on one batch with another backend's gate decisions pinned."""

    def __init__(self, reference: PyTorchBackend) -> None:
        self.reference = reference

    def __call__(
        self, pixel_values: np.ndarray, pixel_mask: np.ndarray, decisions: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """decisions: module path -> the backend's exported-block decisions.

        Returns the outputs under those decisions and {decisions, flipped}: how many the reference,
        given the same earlier decisions, takes otherwise.
        """
        model = self.reference.model
        layers = gated_modules(model, sorted(decisions))
        kept = {path: surviving_blocks(layer) for path, layer in layers.items()}
        other = {
            path: module_decisions(decisions[path], layer.num_blocks, kept[path])
            for path, layer in layers.items()
        }
        own: dict[str, torch.Tensor] = {}

        def record_own(path: str):
            # The reference's own decision on its own X, with every earlier layer pinned: a difference is
            # a flip of this layer alone, not the echo of an earlier one.
            return lambda module, args: own.__setitem__(
                path, active_blocks(module.gate(args[0]), module.threshold)
            )

        hooks = [layer.register_forward_pre_hook(record_own(path)) for path, layer in layers.items()]
        try:
            with pinned(model, layers, other):
                outputs = self.reference.run(pixel_values, pixel_mask)
        finally:
            for hook in hooks:
                hook.remove()
        total = flipped = 0
        for path, blocks in kept.items():
            theirs, ours = (
                (other[path], own[path])
                if blocks is None
                else (other[path][..., blocks], own[path][..., blocks])
            )
            total += theirs.numel()
            flipped += int((theirs != ours).sum())
        return outputs, {"decisions": total, "flipped": flipped}
