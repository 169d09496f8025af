"""Per-layer gate thresholds: block j runs iff logit_j > threshold (docs/op_spec.md).

Two targets, both measured on tokens the gate did not train on:
- sparsity S: on average at most (1 - S) * dense_hidden neurons are computed per token (SIBS-pruned
  neurons count as skipped, as everywhere in gsmlp);
- recall R: the computed blocks hold at least a fraction R of all the neurons that fire.
The threshold sits half-way between the last logit kept and the first one dropped, so that it does not
sit on a calibration token's logit.
"""

from __future__ import annotations

import torch


def _cut(sorted_logits: torch.Tensor, kept: int) -> float:
    """Threshold that keeps exactly the `kept` largest of the (descending) sorted logits."""
    if kept <= 0:
        return float(sorted_logits[0]) + 1.0
    if kept >= len(sorted_logits):
        return float(sorted_logits[-1]) - 1.0
    return 0.5 * (float(sorted_logits[kept - 1]) + float(sorted_logits[kept]))


def threshold_for_sparsity(
    logits: torch.Tensor, sizes: torch.Tensor, dense_hidden: int, target: float
) -> float:
    """logits [N, NB]; sizes [NB] neurons per block. Computes the most blocks within the budget."""
    budget = (1.0 - target) * dense_hidden * logits.shape[0]
    values, order = logits.flatten().sort(descending=True)
    weights = sizes.to(torch.float64).expand_as(logits).flatten()[order]
    kept = int((weights.cumsum(0) <= budget + 1e-9).sum())
    return _cut(values, kept)


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
