"""SIBS: static indicator-based sparsification.

A neuron that fired on at most a fraction `epsilon` of the calibration tokens is removed from fc1 (row and
bias) and fc2 (column): the FFN becomes narrower and needs no kernel. For a neuron that never fires
(epsilon = 0 and a frequency of exactly 0) the change is exact: its ReLU output is always 0, so its fc2
column only ever adds 0; the narrower matmul can still sum the remaining terms in another order.
"""

from __future__ import annotations

import torch
from torch import nn

from gsmlp.model.gated_mlp import GatedSparseMLP


def static_keep(frequency: torch.Tensor, epsilon: float) -> torch.Tensor:
    """[H] bool: neurons that fired on more than `epsilon` of the tokens. Keeps at least one neuron,
    so that fc1/fc2 stay valid matrices (a 0-wide Linear is not exportable)."""
    keep = frequency > epsilon
    if not keep.any():
        keep[int(frequency.argmax())] = True
    return keep


def select_neurons(layer: GatedSparseMLP, index: torch.Tensor) -> None:
    """Rebuild fc1/fc2 with hidden neurons `index` (a subset and/or an order), in place.

    dense_hidden is untouched: sparsity keeps being counted against the original FFN's width.
    Any gate is dropped, because its blocks referred to the old neurons.
    """
    index = index.to(layer.fc1.weight.device)
    fc1 = nn.Linear(layer.d_model, len(index), dtype=layer.fc1.weight.dtype, device=layer.fc1.weight.device)
    fc2 = nn.Linear(len(index), layer.d_model, dtype=layer.fc2.weight.dtype, device=layer.fc2.weight.device)
    with torch.no_grad():
        fc1.weight.copy_(layer.fc1.weight[index])
        fc1.bias.copy_(layer.fc1.bias[index])
        fc2.weight.copy_(layer.fc2.weight[:, index])
        fc2.bias.copy_(layer.fc2.bias)
    fc1.train(layer.fc1.training)
    fc2.train(layer.fc2.training)
    layer.fc1, layer.fc2 = fc1, fc2
    layer.gate = None


def prune_layer(layer: GatedSparseMLP, frequency: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Remove the statically inactive neurons of one FFN; returns the indices kept (old numbering)."""
    kept = static_keep(frequency, epsilon).nonzero().flatten()
    select_neurons(layer, kept)
    return kept


def static_sparsity(kept: int, dense_hidden: int) -> float:
    return 1.0 - kept / dense_hidden
