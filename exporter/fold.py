"""Fold a GatedSparseMLP's SIBS keep-mask into its weights, so the exported FFN is narrower.

A pruned neuron's ReLU output is always treated as zero, so removing its row of W1/B1 and its column of W2
is exact. With a gate, blocks must survive the pruning: each block keeps its own surviving neurons, packed
first and padded with zero neurons (weights and bias 0, so relu(0) = 0 contributes nothing) up to the
largest surviving block; a block with no survivors is dropped together with its gate logit. The folded op
therefore computes exactly what the module computes, on every token.
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


def fold_plain(layer: GatedSparseMLP, apply_keep_mask: bool) -> FoldedFFN:
    """The plain FFN: every neuron (dense) or the kept ones (static mode)."""
    w1, b1, w2 = layer.fc1.weight, layer.fc1.bias, layer.fc2.weight
    if apply_keep_mask and layer.keep_mask is not None:
        keep = layer.keep_mask.bool()
        w1, b1, w2 = w1[keep], b1[keep], w2[:, keep]
    return FoldedFFN(w1.detach(), b1.detach(), w2.detach(), layer.fc2.bias.detach())


def _block_members(keep: torch.Tensor, block_size: int, num_blocks: int) -> list[torch.Tensor]:
    """For each block, the indices of its kept neurons."""
    hidden = keep.numel()
    members = []
    for block in range(num_blocks):
        start, stop = block * block_size, min((block + 1) * block_size, hidden)
        members.append(torch.arange(start, stop)[keep[start:stop]])
    return members


def fold_gated(layer: GatedSparseMLP) -> FoldedFFN:
    """The gated FFN with its keep-mask folded (see the module docstring for why this is exact)."""
    gate = layer.gate
    assert gate is not None, "fold_gated needs a gated layer"
    w1, b1, w2 = layer.fc1.weight.detach(), layer.fc1.bias.detach(), layer.fc2.weight.detach()
    up, bias = gate.up.weight.detach(), gate.up.bias.detach()
    folded = FoldedFFN(
        w1,
        b1,
        w2,
        layer.fc2.bias.detach(),
        gate.down.weight.detach(),
        up,
        bias,
        layer.block_size,
        float(layer.threshold),
    )
    if layer.keep_mask is None:
        return folded
    members = _block_members(layer.keep_mask.bool().cpu(), layer.block_size, layer.num_blocks)
    surviving = [b for b, idx in enumerate(members) if idx.numel() > 0]
    width = max((members[b].numel() for b in surviving), default=1)
    rows = torch.full((len(surviving), width), -1, dtype=torch.long)
    for slot, block in enumerate(surviving):
        rows[slot, : members[block].numel()] = members[block]
    index = rows.flatten()
    real = (index >= 0).to(w1.dtype)
    safe = index.clamp(min=0)
    folded.w1 = w1[safe] * real[:, None]
    folded.b1 = b1[safe] * real
    folded.w2 = w2[:, safe] * real[None, :]
    folded.gate_up, folded.gate_bias = up[surviving], bias[surviving]
    folded.block_size = width
    return folded
