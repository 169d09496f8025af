"""Per-layer gate thresholds: block j runs iff logit_j > threshold (docs/op_spec.md).

Two targets, both measured on tokens the gate did not train on:
- sparsity S: on average at most (1 - S) * dense_hidden neurons are computed per token (SIBS-pruned
  neurons count as skipped, as everywhere in gsmlp);
- recall R: the computed blocks hold at least a fraction R of all the neurons that fire.
The threshold sits half-way between the last logit kept and the first one dropped, so that it does not
sit on a calibration token's logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _cut(sorted_logits: torch.Tensor, kept: int) -> float:
    """Threshold that keeps exactly the `kept` largest of the (descending) sorted logits."""
    if kept <= 0:
        return float(sorted_logits[0]) + 1.0
    if kept >= len(sorted_logits):
        return float(sorted_logits[-1]) - 1.0
    return 0.5 * (float(sorted_logits[kept - 1]) + float(sorted_logits[kept]))


@dataclass(frozen=True)
class SparsityLadder:
    """The logits sorted once, with the neurons that each prefix of them computes: a sweep asks one layer
    for a threshold at every point, and sorting its held-out logits once serves them all."""

    values: torch.Tensor  # every (token, block) logit, descending
    computed: torch.Tensor  # float64 neurons computed by keeping values[: i + 1]
    tokens: int

    @classmethod
    def of(cls, logits: torch.Tensor, sizes: torch.Tensor) -> SparsityLadder:
        """logits [N, NB]; sizes [NB] neurons per block."""
        values, order = logits.flatten().sort(descending=True)
        weights = sizes.to(torch.float64).expand_as(logits).flatten()[order]
        return cls(values, weights.cumsum(0), logits.shape[0])

    def threshold(self, dense_hidden: int, target: float) -> float:
        """The threshold that computes the most blocks within (1 - target) * dense_hidden per token."""
        budget = (1.0 - target) * dense_hidden * self.tokens
        return _cut(self.values, int((self.computed <= budget + 1e-9).sum()))


def threshold_for_sparsity(
    logits: torch.Tensor, sizes: torch.Tensor, dense_hidden: int, target: float
) -> float:
    """logits [N, NB]; sizes [NB] neurons per block. Computes the most blocks within the budget."""
    return SparsityLadder.of(logits, sizes).threshold(dense_hidden, target)


def threshold_for_recall(logits: torch.Tensor, fired: torch.Tensor, target: float) -> float:
    """fired [N, NB]: neurons firing in each (token, block). Computes the fewest blocks reaching R."""
    values, order = logits.flatten().sort(descending=True)
    counts = fired.to(torch.float64).flatten()[order]
    total = float(counts.sum())
    if total == 0:
        return _cut(values, 0)
    reached = counts.cumsum(0) >= target * total - 1e-9
    kept = int(reached.nonzero()[0]) + 1
    return _cut(values, kept)


def gated_sparsity(logits: torch.Tensor, threshold: float, sizes: torch.Tensor, dense_hidden: int) -> float:
    computed = ((logits > threshold).double() * sizes.double()).sum() / max(logits.shape[0], 1)
    return 1.0 - float(computed) / dense_hidden


def neuron_recall(logits: torch.Tensor, threshold: float, fired: torch.Tensor) -> float:
    total = float(fired.sum())
    if total == 0:
        return 1.0
    return float((fired.double() * (logits > threshold).double()).sum()) / total
