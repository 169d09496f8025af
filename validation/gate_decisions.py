"""Gate decisions across backends: read another backend's decisions and pin PyTorch to them.

A gated FFN is discontinuous in its input. A token whose gate logit lies within rounding noise of the
threshold can switch a block on in one backend and off in the other, and that one flipped block changes
the outputs by far more than fp32 rounding. Parity of a gated model therefore has two parts:

- the computation: PyTorch re-runs each batch with the other backend's gate decisions pinned, and the
  outputs must then agree to the dtype's bound (`max_abs_diff`);
- the decisions: the fraction of gate decisions the two backends took differently (`flip_rate`) must
  stay under its own bound, and the COCO deltas show what the flips cost.

Every backend reports its own decisions: validation runs a copy of the file in which each
`GatedSparseMLP` node also outputs BlockMask, the gate decisions it took itself (the op's optional output 1,
exporter.graph.expose_block_masks). The ONNX Runtime op library, the inlined function body and the TensorRT
plugin all fill it from the very comparison that chose their blocks, in fp32 and in fp16 alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gsmlp.exporter.node_names import module_path
from gsmlp.model.gated_mlp import GatedSparseMLP, active_blocks
from gsmlp.op_identity import BLOCK_MASK_OUTPUT_PREFIX

if TYPE_CHECKING:  # backends imports this module: a runtime import would be circular
    from gsmlp.validation.backends import PyTorchBackend


def split_block_masks(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Removes the BlockMask outputs from a backend's outputs; returns them by module path.

    A node whose name names no module (not traced by gsmlp's exporter) is dropped: it cannot be pinned.
    """
    names = [name for name in outputs if name.startswith(BLOCK_MASK_OUTPUT_PREFIX)]
    masks = {name[len(BLOCK_MASK_OUTPUT_PREFIX) :]: outputs.pop(name) for name in names}
    return {path: mask for node, mask in masks.items() if (path := module_path(node)) is not None}


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
def meters_paused(model: nn.Module) -> Iterator[None]:
    """The sparsity meters of every GatedSparseMLP pause for the duration: a check's re-run is not part of
    the reference's run."""
    meters = [m.meter for m in model.modules() if isinstance(m, GatedSparseMLP)]
    enabled = [meter.enabled for meter in meters]
    try:
        for meter in meters:
            meter.enabled = False
        yield
    finally:
        for meter, was in zip(meters, enabled, strict=True):
            meter.enabled = was


@contextmanager
def pinned(
    model: nn.Module, layers: dict[str, GatedSparseMLP], decisions: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Every layer takes the given block decisions instead of its gate's, for the duration (meters paused)."""
    try:
        with meters_paused(model):
            for path, layer in layers.items():
                layer.pinned_blocks = decisions[path]
            yield
    finally:
        for layer in layers.values():
            layer.pinned_blocks = None


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
        other = {path: torch.from_numpy(decisions[path]) for path in layers}
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
        for path in layers:
            total += other[path].numel()
            flipped += int((other[path] != own[path]).sum())
        return outputs, {"decisions": total, "flipped": flipped}
