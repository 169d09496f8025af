"""MGS micro-gates, trained layer-wise on recorded tokens with the detector frozen.

Labels come from the layer's own fc1: block j of token x is positive iff some neuron in it fires
(relu(W1 x + b1) > 0). The "magnitude" labels weight each positive (token, block) by how much the block
changes the FFN output, ||W2[:, block] relu(h_block)||, so that the gate spends its capacity on the blocks
whose omission hurts the output, not on blocks that fire barely above zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gsmlp.calibration.choices import LABELS
from gsmlp.calibration.permutation import block_sizes
from gsmlp.distributed import ONE_PROCESS, Group
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate


@dataclass
class BlockTargets:
    """What a gate is trained and judged against, for a set of tokens of one layer."""

    active: torch.Tensor  # [N, NB] bool: some neuron of the block fires
    fired: torch.Tensor  # [N, NB] float: how many neurons of the block fire
    contribution: torch.Tensor  # [N, NB] float: ||W2[:, block] relu(h_block)||


@torch.no_grad()
def block_targets(layer: GatedSparseMLP, x: torch.Tensor) -> BlockTargets:
    post = F.relu(layer.fc1(x))
    blocks, size = layer.num_blocks, layer.block_size
    padded = F.pad(post, (0, blocks * size - layer.hidden)).unflatten(-1, (blocks, size))
    fired = (padded > 0).sum(-1).float()
    w2 = F.pad(layer.fc2.weight, (0, blocks * size - layer.hidden)).unflatten(-1, (blocks, size))
    # per block: W2_block [D, B] @ h_block [N, B] -> [N, NB, D]; computed block by block to bound memory
    contribution = torch.stack([(padded[:, j] @ w2[:, j].T).norm(dim=-1) for j in range(blocks)], dim=-1)
    return BlockTargets(active=fired > 0, fired=fired, contribution=contribution)


def label_weights(targets: BlockTargets, labels: str) -> torch.Tensor:
    if labels == "any":
        return torch.ones_like(targets.fired)
    if labels == "magnitude":
        positive = targets.contribution[targets.active]
        scale = positive.mean() if positive.numel() else torch.tensor(1.0)
        # positives weighted by relative contribution (clipped so one token cannot dominate); negatives 1
        relative = (targets.contribution / scale.clamp_min(1e-12)).clamp(max=10.0)
        return torch.where(targets.active, relative, torch.ones_like(relative))
    raise ValueError(f"unknown gate labels {labels!r}; choose one of {', '.join(LABELS)}")


@dataclass
class GateTraining:
    rank: int = 16
    labels: str = "magnitude"
    steps: int = 600
    batch_size: int = 1024
    learning_rate: float = 3e-3
    seed: int = 0
    # Under torchrun the batch stays global: each rank takes a contiguous 1/world_size of every step's
    # batch_size tokens and the gradients are summed, so the learning rate and the seed rules do not
    # depend on the world size (every rank draws the same indices and holds the same gate).
    group: Group = ONE_PROCESS


def train_gate(layer: GatedSparseMLP, x: torch.Tensor, options: GateTraining) -> MicroGate:
    """Fit a MicroGate for `layer` on tokens x [N, D] (binary cross-entropy on block activity)."""
    generator = torch.Generator().manual_seed(options.seed)
    torch.manual_seed(options.seed)
    gate = MicroGate(layer.d_model, layer.num_blocks, options.rank)
    targets = block_targets(layer, x)
    weights = label_weights(targets, options.labels)
    goal = targets.active.float()
    # Start at the blocks' base rates so the first steps are not spent learning the bias.
    with torch.no_grad():
        rate = goal.mean(0).clamp(1e-4, 1 - 1e-4)
        gate.up.bias.copy_(torch.log(rate / (1 - rate)))
    optimizer = torch.optim.Adam(gate.parameters(), lr=options.learning_rate)
    with single_thread():
        for _ in range(options.steps):
            pick = torch.randint(0, x.shape[0], (min(options.batch_size, x.shape[0]),), generator=generator)
            optimizer.zero_grad(set_to_none=True)
            if options.group.distributed:
                _data_parallel_step(gate, x, goal, weights, pick, options.group)
            else:
                loss = F.binary_cross_entropy_with_logits(gate(x[pick]), goal[pick], weight=weights[pick])
                loss.backward()
            optimizer.step()
    return gate.eval().requires_grad_(False)


def _data_parallel_step(
    gate: MicroGate,
    x: torch.Tensor,
    goal: torch.Tensor,
    weights: torch.Tensor,
    pick: torch.Tensor,
    group: Group,
) -> None:
    """This rank's share of a step's gradient, summed over ranks: the gradient of the global batch's mean."""
    mine = torch.tensor(group.shard(pick.tolist()), dtype=torch.int64)
    elements = pick.numel() * goal.shape[-1]
    loss = F.binary_cross_entropy_with_logits(
        gate(x[mine]), goal[mine], weight=weights[mine], reduction="sum"
    )
    (loss / elements).backward()
    for parameter in gate.parameters():
        grad = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        parameter.grad = group.sum(grad)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """The gate's matmuls are tiny: on a busy 2-core machine, 600 steps took 24.7 s with 2 threads and
    3.9 s with 1 (thread hand-offs dominate), so gate training runs on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def gate_logits(gate: MicroGate, x: torch.Tensor) -> torch.Tensor:
    return gate(x)


def layer_block_sizes(layer: GatedSparseMLP) -> torch.Tensor:
    return block_sizes(layer.hidden, layer.block_size)
