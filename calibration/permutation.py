"""A function-preserving permutation of hidden neurons that puts co-active neurons in the same block.

Reordering fc1's rows (and bias) and fc2's columns together leaves the FFN's function unchanged (up to
the order of fp32 summation in fc2). A block is computed when any of its neurons fires, so the fewer
distinct tokens fire a block, the more can be skipped: blocks should hold neurons that fire together.
"""

from __future__ import annotations

import torch

from gsmlp.calibration.choices import ORDERINGS
from gsmlp.calibration.sibs import select_neurons
from gsmlp.model.gated_mlp import GatedSparseMLP, num_blocks_for


def coactivation_order(coactive: torch.Tensor, tokens: int, block_size: int) -> torch.Tensor:
    """Greedy blocks: seed each block with the rarest free neuron, then add, one at a time, the free
    neuron that adds least to the block's firing probability.

    Adding neuron j to block S raises P(S fires) by P(j) - P(j and some i in S), which pairwise counts
    bound below by P(j) - max_i P(j and i): that bound is the greedy cost. Rare seeds first: seeding with
    the most frequent neuron instead put a frequent neuron in every block, so every block fired (oracle
    block sparsity 0.000, rare seeds 0.194, on deformable-detr-small encoder.2; docs/CALIBRATION.md).
    """
    hidden = coactive.shape[0]
    joint = coactive.double() / max(tokens, 1)
    frequency = joint.diagonal().clone()
    free = torch.ones(hidden, dtype=torch.bool)
    order: list[int] = []
    for _ in range(num_blocks_for(hidden, block_size)):
        seed = int(torch.where(free, frequency, torch.inf).argmin())
        free[seed] = False
        block = [seed]
        covered = joint[seed].clone()  # max_i P(j and i) over block members i
        while len(block) < block_size and free.any():
            cost = torch.where(free, frequency - covered, torch.inf)
            pick = int(cost.argmin())
            free[pick] = False
            block.append(pick)
            covered = torch.maximum(covered, joint[pick])
        order.extend(block)
    return torch.tensor(order, dtype=torch.int64)


def neuron_order(ordering: str, coactive: torch.Tensor, tokens: int, block_size: int) -> torch.Tensor:
    if ordering == "identity":
        return torch.arange(coactive.shape[0])
    if ordering == "frequency":
        return coactive.diagonal().argsort(descending=True, stable=True)
    if ordering == "coactivation":
        return coactivation_order(coactive, tokens, block_size)
    raise ValueError(f"unknown neuron ordering {ordering!r}; choose one of {', '.join(ORDERINGS)}")


def permute_layer(layer: GatedSparseMLP, order: torch.Tensor) -> None:
    """Apply the permutation `order` (new position -> old neuron) to fc1 and fc2."""
    if sorted(order.tolist()) != list(range(layer.hidden)):
        raise ValueError(f"order is not a permutation of the layer's {layer.hidden} hidden neurons")
    select_neurons(layer, order)


def oracle_block_sparsity(pre_activation: torch.Tensor, block_size: int, dense_hidden: int) -> float:
    """Fraction of the dense FFN's neurons in blocks where nothing fires: the most a perfect block gate
    could skip at this block size and neuron order (pruned neurons count as skipped)."""
    tokens, hidden = pre_activation.shape
    blocks = num_blocks_for(hidden, block_size)
    fired = torch.nn.functional.pad(pre_activation > 0, (0, blocks * block_size - hidden))
    block_fired = fired.unflatten(-1, (blocks, block_size)).any(-1)
    sizes = block_sizes(hidden, block_size)
    computed = (block_fired.double() * sizes).sum() / max(tokens, 1)
    return 1.0 - float(computed) / dense_hidden


def block_sizes(hidden: int, block_size: int) -> torch.Tensor:
    """[num_blocks] float64 neurons per block (the last block may be partial)."""
    sizes = torch.full((num_blocks_for(hidden, block_size),), float(block_size), dtype=torch.float64)
    sizes[-1] = hidden - block_size * (len(sizes) - 1)
    return sizes
