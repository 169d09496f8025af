"""Per-layer FFN sparsity accounting, cheap enough to stay on during evaluation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

import torch


def _bookkeeping(method: Callable) -> Callable:
    """Adds the method's own run time to the meter's `metering_seconds`, so timings can leave it out."""

    @wraps(method)
    def timed(self: SparsityMeter, *args, **kwargs) -> None:
        started = time.perf_counter()
        method(self, *args, **kwargs)
        self.metering_seconds += time.perf_counter() - started

    return timed


@dataclass
class SparsityMeter:
    """Counts, over a run, the hidden neurons computed, the ReLU outputs that were zero and the time spent.

    sparsity = 1 - computed / (tokens * dense_hidden): the fraction of the original FFN's
    hidden neurons that were not computed, SIBS-pruned ones included.

    Counting zero activations costs about as much as a ReLU pass, in dense mode more than in gated mode,
    so the meter's own time is kept apart: `seconds` is the FFN's forward time without it.
    """

    enabled: bool = True
    tokens: int = 0
    computed: int = 0
    zeros: int = 0
    dense_hidden: int = 0
    forward_seconds: float = 0.0  # wall time inside the FFN's forward, metering included
    metering_seconds: float = 0.0  # of which spent in this meter's record methods

    def reset(self) -> None:
        self.tokens = self.computed = self.zeros = 0
        self.forward_seconds = self.metering_seconds = 0.0

    @_bookkeeping
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

    @_bookkeeping
    def record_kernel(
        self, x: torch.Tensor, active: torch.Tensor, block_size: int, hidden: int, dense_hidden: int
    ) -> None:
        """Sparsity from a kernel's active-block counts (the kernel never materialises h).

        Computed neurons are active blocks x block_size, capped at `hidden` (exact unless the partial last
        block is active). The kernel does not report which computed activations were zero, so the zero
        count holds only the skipped and pruned neurons: a lower bound on activation sparsity.
        """
        tokens = x.numel() // x.shape[-1] if x.shape[-1] else 0
        computed = int(torch.clamp(active.to(torch.int64) * block_size, max=hidden).sum())
        self.tokens += tokens
        self.dense_hidden = dense_hidden
        self.computed += computed
        self.zeros += dense_hidden * tokens - computed

    @property
    def seconds(self) -> float:
        """Time in the FFN's forward, the meter's own bookkeeping left out."""
        return max(0.0, self.forward_seconds - self.metering_seconds)

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
            "seconds": self.seconds,
        }
