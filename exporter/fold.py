"""The weights of one exported FFN, read off a GatedSparseMLP in the layout the export stand-ins use.

SIBS removes pruned neurons from the module's weights (calibration.sibs), so the module is already as narrow
as the exported FFN: nothing is folded beyond taking the tensors out of autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gsmlp.model.gated_mlp import GatedSparseMLP


@dataclass
class FoldedFFN:
    """The weights of one exported FFN, in torch Linear layout; the gate fields are None when ungated."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    gate_down: torch.Tensor | None = None
    gate_up: torch.Tensor | None = None
    gate_bias: torch.Tensor | None = None
    block_size: int = 1
    threshold: float = 0.0


def fold_plain(layer: GatedSparseMLP) -> FoldedFFN:
    """The plain FFN: every neuron the module holds."""
    return FoldedFFN(
        layer.fc1.weight.detach(), layer.fc1.bias.detach(), layer.fc2.weight.detach(), layer.fc2.bias.detach()
    )


def fold_gated(layer: GatedSparseMLP) -> FoldedFFN:
    """The gated FFN: the plain weights plus the micro-gate, its block size and threshold."""
    gate = layer.gate
    assert gate is not None, "fold_gated needs a gated layer"
    folded = fold_plain(layer)
    folded.gate_down, folded.gate_up = gate.down.weight.detach(), gate.up.weight.detach()
    folded.gate_bias = gate.up.bias.detach()
    folded.block_size, folded.threshold = layer.block_size, float(layer.threshold)
    return folded
