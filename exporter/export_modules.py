"""Stand-ins for GatedSparseMLP while tracing: each emits exactly the ONNX the op contract asks for."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gsmlp.exporter.fold import FoldedFFN
from gsmlp.model.gated_mlp import active_blocks, expand_block_mask
from gsmlp.op_identity import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION


class GatedSparseMLPOp(torch.autograd.Function):
    """Eager: the contract in torch ops (so tracing sees real shapes). Export: one gsmlp node."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size: int, threshold: float):
        logits = F.linear(F.linear(x, gate_down), gate_up, gate_bias)
        mask = expand_block_mask(active_blocks(logits, threshold), block_size, w1.shape[0])
        h = torch.where(mask, F.relu(F.linear(x, w1, b1)), torch.zeros((), dtype=x.dtype))
        return F.linear(h, w2, b2)

    @staticmethod
    def symbolic(g, x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold):
        out = g.op(
            f"{DOMAIN}::{OP_TYPE}",
            x,
            w1,
            b1,
            w2,
            b2,
            gate_down,
            gate_up,
            gate_bias,
            block_size_i=int(block_size),
            threshold_f=float(threshold),
            plugin_version_s=PLUGIN_VERSION,
            plugin_namespace_s=PLUGIN_NAMESPACE,
        )
        out.setType(x.type())
        return out


class _FoldedModule(nn.Module):
    def __init__(self, folded: FoldedFFN) -> None:
        super().__init__()
        # Parameters (not buffers) so they become named initializers of the ONNX graph.
        self.w1 = nn.Parameter(folded.w1.clone(), requires_grad=False)
        self.b1 = nn.Parameter(folded.b1.clone(), requires_grad=False)
        self.w2 = nn.Parameter(folded.w2.clone(), requires_grad=False)
        self.b2 = nn.Parameter(folded.b2.clone(), requires_grad=False)


class PlainMLPForExport(_FoldedModule):
    """fc2(relu(fc1(x))): exports as MatMul/Add/Relu."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.relu(F.linear(x, self.w1, self.b1)), self.w2, self.b2)


class GatedMLPForExport(_FoldedModule):
    """One gsmlp::GatedSparseMLP node with the weights and gate as initializers."""

    def __init__(self, folded: FoldedFFN) -> None:
        super().__init__(folded)
        self.gate_down = nn.Parameter(folded.gate_down.clone(), requires_grad=False)
        self.gate_up = nn.Parameter(folded.gate_up.clone(), requires_grad=False)
        self.gate_bias = nn.Parameter(folded.gate_bias.clone(), requires_grad=False)
        self.block_size = folded.block_size
        self.threshold = folded.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GatedSparseMLPOp.apply(
            x,
            self.w1,
            self.b1,
            self.w2,
            self.b2,
            self.gate_down,
            self.gate_up,
            self.gate_bias,
            self.block_size,
            self.threshold,
        )
