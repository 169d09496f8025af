"""Per-layer FFN sparsity accounting, cheap enough to stay on during evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SparsityMeter:
    """Counts, over a run, the hidden neurons computed and the ReLU outputs that were zero.

    sparsity = 1 - computed / (tokens * dense_hidden): the fraction of the original FFN's
    hidden neurons that were not computed, SIBS-pruned ones included.
    """

    enabled: bool = True
    tokens: int = 0
    computed: int = 0
    zeros: int = 0
    dense_hidden: int = 0

    def reset(self) -> None:
        self.tokens = self.computed = self.zeros = 0

    def record(
        self,
        x: torch.Tensor,
        *,
        computed: int | torch.Tensor,
        zeros: torch.Tensor,
        dense_hidden: int,
    ) -> None:
        tokens = x.numel() // x.shape[-1] if x.shape[-1] else 0
        self.tokens += tokens
        self.dense_hidden = dense_hidden
        if isinstance(computed, torch.Tensor):
            self.computed += int(computed.sum())
        else:
            self.computed += computed * tokens
        # Inherent sparsity: zero ReLU outputs among the neurons the model holds, plus pruned ones.
        pruned = (dense_hidden - zeros.shape[-1]) * tokens
        self.zeros += int((zeros == 0).sum()) + pruned

    @property
    def sparsity(self) -> float:
        """Fraction of dense hidden neurons not computed, token-weighted."""
        total = self.tokens * self.dense_hidden
        return 1.0 - self.computed / total if total else 0.0

    @property
    def activation_sparsity(self) -> float:
        """Fraction of (dense) hidden activations that were zero: the inherent sparsity."""
        total = self.tokens * self.dense_hidden
        return self.zeros / total if total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tokens": self.tokens,
            "ffn_sparsity": self.sparsity,
            "activation_sparsity": self.activation_sparsity,
        }
