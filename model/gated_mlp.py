"""GatedSparseMLP: the FFN `fc2(relu(fc1(x)))` with a micro-gate.

The op contract is docs/op_spec.md. In short, for a token x:
    h = relu(W1 x + b1); m = block mask; y = W2 (m ? h : 0) + b2
where block j of `block_size` neurons is active iff NOT (gate_logit_j <= threshold), so a NaN logit
keeps its block active and NaN propagates as it would in the dense FFN.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.sparsity import SparsityMeter

Mode = Literal["dense", "static", "gated", "oracle"]
MODES: tuple[str, ...] = ("dense", "static", "gated", "oracle")


class MicroGate(nn.Module):
    """A low-rank linear map d_model -> rank -> one logit per block of hidden neurons."""

    def __init__(self, d_model: int, num_blocks: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, rank, bias=False)
        self.up = nn.Linear(rank, num_blocks, bias=True)

    @property
    def rank(self) -> int:
        return self.down.out_features

    @property
    def num_blocks(self) -> int:
        return self.up.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def macs_per_token(self) -> int:
        return self.down.in_features * self.rank + self.rank * self.num_blocks


def num_blocks_for(hidden: int, block_size: int) -> int:
    """Blocks cover the hidden neurons in order; the last one may be partial."""
    return -(-hidden // block_size)


def expand_block_mask(block_mask: torch.Tensor, block_size: int, hidden: int) -> torch.Tensor:
    """[..., num_blocks] bool -> [..., hidden] bool."""
    return block_mask.repeat_interleave(block_size, dim=-1)[..., :hidden]


def active_blocks(logits: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """The contract's activation rule: NaN logits count as active."""
    return ~(logits <= threshold)


class GatedSparseMLP(nn.Module):
    """Drop-in replacement for a transformers DETR / Deformable DETR FFN (`layer.mlp`).

    `fc1` and `fc2` keep their names, so state dicts of the original model load unchanged.
    Modes: "dense" is the original module bit for bit; "static" is a SIBS-pruned FFN without a gate (SIBS
    removes neurons physically, so it computes every neuron it still has); "gated" applies the micro-gate;
    "oracle" computes exactly the blocks that hold a positive activation (an upper bound on what any gate
    can skip).
    """

    def __init__(
        self,
        fc1: nn.Linear,
        fc2: nn.Linear,
        *,
        dropout: float = 0.0,
        activation_dropout: float = 0.0,
        block_size: int = DEFAULT_BLOCK_SIZE,
        dense_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if fc1.out_features != fc2.in_features or fc1.in_features != fc2.out_features:
            raise ValueError(
                f"fc1 {tuple(fc1.weight.shape)} and fc2 {tuple(fc2.weight.shape)} do not form an FFN"
            )
        self.fc1 = fc1
        self.fc2 = fc2
        self.dropout = dropout
        self.activation_dropout = activation_dropout
        self.block_size = block_size
        # The width before SIBS pruning: sparsity is always counted against the original FFN.
        self.dense_hidden = dense_hidden or fc1.out_features
        self.mode: Mode = "dense"
        self.gate: MicroGate | None = None
        self.register_buffer("threshold", torch.tensor(0.0))
        self.meter = SparsityMeter()
        self.kernel = None  # set by gsmlp.kernels when a compiled kernel serves the gated mode
        # Gate decisions imposed from outside (parity checks pin PyTorch to another backend's decisions,
        # see gsmlp.validation.gate_decisions); None lets the gate decide.
        self.pinned_blocks: torch.Tensor | None = None

    @property
    def d_model(self) -> int:
        return self.fc1.in_features

    @property
    def hidden(self) -> int:
        return self.fc1.out_features

    @property
    def num_blocks(self) -> int:
        return num_blocks_for(self.hidden, self.block_size)

    def set_mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "gated" and self.gate is None:
            raise ValueError("mode 'gated' needs a micro-gate; this FFN has none (run `gsmlp calibrate`)")
        self.mode = mode

    def attach_gate(self, gate: MicroGate, threshold: float) -> None:
        if gate.num_blocks != self.num_blocks or gate.down.in_features != self.d_model:
            raise ValueError(
                f"gate maps {gate.down.in_features} -> {gate.num_blocks} blocks, "
                f"but this FFN has d_model {self.d_model} and {self.num_blocks} blocks of {self.block_size}"
            )
        self.gate = gate
        self.threshold.fill_(float(threshold))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.meter.enabled:
            return self._forward(hidden_states)
        started = time.perf_counter()
        y = self._forward(hidden_states)
        self.meter.forward_seconds += time.perf_counter() - started
        return y

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._dense(x) if self.mode == "dense" else self._masked(x)

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        # Same op sequence as transformers' DetrMLP, so the output is bit for bit identical.
        h = F.relu(self.fc1(x))
        if self.meter.enabled:
            self.meter.record(x, computed=self.hidden, zeros=h, dense_hidden=self.dense_hidden)
        h = F.dropout(h, p=self.activation_dropout, training=self.training)
        y = self.fc2(h)
        return F.dropout(y, p=self.dropout, training=self.training)

    def block_mask(self, x: torch.Tensor, pre_activation: torch.Tensor | None = None) -> torch.Tensor | None:
        """[..., num_blocks] bool for the current mode, or None where every block is computed."""
        if self.mode == "gated" and self.pinned_blocks is not None:
            if self.pinned_blocks.shape != (*x.shape[:-1], self.num_blocks):
                raise ValueError(
                    f"pinned gate decisions have shape {tuple(self.pinned_blocks.shape)}, but this call "
                    f"needs {(*x.shape[:-1], self.num_blocks)}"
                )
            return self.pinned_blocks
        if self.mode == "gated":
            return active_blocks(self.gate(x), self.threshold)
        if self.mode == "oracle":
            pre = self.fc1(x) if pre_activation is None else pre_activation
            padded = F.pad(pre, (0, self.num_blocks * self.block_size - self.hidden), value=-1.0)
            return (padded.unflatten(-1, (self.num_blocks, self.block_size)) > 0).any(-1)
        return None

    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "gated" and self.kernel is not None and self.pinned_blocks is None:
            # The kernel returns (y, active blocks per token), or None where it cannot serve this call.
            result = self.kernel(self, x)
            if result is not None:
                y, active = result
                if self.meter.enabled:
                    self.meter.record_kernel(x, active, self.block_size, self.hidden, self.dense_hidden)
                return y
        pre = self.fc1(x)
        blocks = self.block_mask(x, pre)
        mask = None if blocks is None else expand_block_mask(blocks, self.block_size, self.hidden)
        h = F.relu(pre)
        if mask is not None:
            # Select, not multiply: a skipped neuron contributes exactly nothing, even if it is NaN/Inf.
            h = torch.where(mask, h, torch.zeros((), dtype=h.dtype, device=h.device))
        if self.meter.enabled:
            computed = self.hidden if mask is None else mask.sum(-1)
            self.meter.record(x, computed=computed, zeros=h, dense_hidden=self.dense_hidden)
        return self.fc2(h)

    def macs_per_token(self) -> dict[str, int]:
        """MACs of the dense FFN this module replaced, and of its gate."""
        dense = 2 * self.d_model * self.dense_hidden
        gate = self.gate.macs_per_token() if self.gate is not None else 0
        return {"dense_ffn": dense, "gate": gate}
