"""Deformable DETR's multi-scale sampling for export: one gsmlp node, or the levelwise GridSample form.

`--sampling op` (the default) traces each sampling core (transformers' MultiScaleDeformableAttention) to one
`gsmlp::MultiScaleDeformableAttention` node (docs/op_spec.md); the file carries the op's local function
(exporter/sampling_function.py), whose body is the levelwise form below, so every ONNX runtime runs it.
`--sampling inline` traces the levelwise form itself, with no node.

The levelwise form: each level's samples are weighted as they are drawn.

transformers stacks the samples of every level into one [batch * heads, head_dim, queries, levels * points]
tensor, then weights and sums it. Traced, the stack is a Concat on an inner axis that copies the largest
tensor of the model once more (218 MB per encoder layer of Deformable-DETR-R50 at 800 x 800); ONNX Runtime
spent 13 % of that model's time in those Concats (docs/PERFORMANCE.md). Weighting and summing each level's
samples, then adding the per-level sums, computes the same attention with no Concat: only the order of
the levels * points terms of each sum changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from onnx import TensorProto
from torch import nn
from torch.nn import functional as F
from torch.onnx import symbolic_helper

from gsmlp.errors import GsmlpError
from gsmlp.model.sampling import sampling_owners
from gsmlp.op_identity import DOMAIN, MSDA_OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

Sampling = Literal["op", "inline"]
SAMPLING_CHOICES: tuple[str, ...] = ("op", "inline")


def levelwise_sampling(
    value: torch.Tensor,
    levels: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The forward of transformers' MultiScaleDeformableAttention, summed level by level."""
    batch, _, heads, head_dim = value.shape
    _, queries, _, _, points, _ = sampling_locations.shape
    values = value.split([height * width for height, width in levels], dim=1)
    grids = 2 * sampling_locations - 1
    output = None
    for level, (height, width) in enumerate(levels):
        level_value = values[level].flatten(2).transpose(1, 2)
        level_value = level_value.reshape(batch * heads, head_dim, height, width)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        samples = F.grid_sample(
            level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        weights = attention_weights[:, :, :, level].transpose(1, 2)
        weights = weights.reshape(batch * heads, 1, queries, points)
        level_sum = (samples * weights).sum(-1)
        output = level_sum if output is None else output + level_sum
    return output.view(batch, heads * head_dim, queries).transpose(1, 2).contiguous()


class LevelwiseDeformableAttention(nn.Module):
    """transformers' MultiScaleDeformableAttention, summed level by level: `--sampling inline`."""

    def forward(
        self,
        value: torch.Tensor,
        value_spatial_shapes: torch.Tensor,
        value_spatial_shapes_list: list[tuple[int, int]],
        level_start_index: torch.Tensor,
        sampling_locations: torch.Tensor,
        attention_weights: torch.Tensor,
        im2col_step: int,
    ) -> torch.Tensor:
        return levelwise_sampling(value, value_spatial_shapes_list, sampling_locations, attention_weights)


class MultiScaleDeformableAttentionOp(torch.autograd.Function):
    """Eager: the levelwise sampling (so tracing sees real shapes). Export: one gsmlp node."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, levels):
        return levelwise_sampling(value, list(levels), sampling_locations, attention_weights)

    @staticmethod
    def symbolic(g, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, levels):
        # TensorRT wants INT32 shape and index inputs; transformers holds them as int64.
        shapes = g.op("Cast", spatial_shapes, to_i=TensorProto.INT32)
        starts = g.op("Cast", level_start_index, to_i=TensorProto.INT32)
        out = g.op(
            f"{DOMAIN}::{MSDA_OP_TYPE}",
            value,
            shapes,
            starts,
            sampling_locations,
            attention_weights,
            plugin_version_s=PLUGIN_VERSION,
            plugin_namespace_s=PLUGIN_NAMESPACE,
        )
        batch, _, heads, head_dim = _sizes(value, 4)
        queries = _sizes(sampling_locations, 6)[1]
        channels = heads * head_dim if heads is not None and head_dim is not None else None
        out.setType(value.type().with_sizes([batch, queries, channels]))
        return out


def _sizes(value, rank: int) -> list[int | None]:
    sizes = symbolic_helper._get_tensor_sizes(value)
    return list(sizes) if sizes is not None and len(sizes) == rank else [None] * rank


class SamplingNodeForExport(nn.Module):
    """One gsmlp::MultiScaleDeformableAttention node: `--sampling op`. Records the level counts it traced."""

    def __init__(self, levels_seen: set[int]) -> None:
        super().__init__()
        self.levels_seen = levels_seen

    def forward(
        self,
        value: torch.Tensor,
        value_spatial_shapes: torch.Tensor,
        value_spatial_shapes_list: list[tuple[int, int]],
        level_start_index: torch.Tensor,
        sampling_locations: torch.Tensor,
        attention_weights: torch.Tensor,
        im2col_step: int,
    ) -> torch.Tensor:
        levels = tuple((int(height), int(width)) for height, width in value_spatial_shapes_list)
        self.levels_seen.add(len(levels))
        return MultiScaleDeformableAttentionOp.apply(
            value, value_spatial_shapes, level_start_index, sampling_locations, attention_weights, levels
        )


@dataclass
class TracedSampling:
    """What a traced model's deformable attentions became: how many, and the level counts of the nodes."""

    sampling: Sampling
    modules: int = 0
    levels: set[int] = field(default_factory=set)


@contextlib.contextmanager
def sampling_for_export(model: nn.Module, sampling: Sampling) -> Iterator[TracedSampling]:
    """Swap each deformable attention's sampling core of `model` for its export stand-in, in place, and
    back afterwards: "op" (one node each) or "inline" (the levelwise GridSample form).

    Yields what was swapped (no modules for DETR, which has none); `levels` fills in during the trace.
    """
    if sampling not in SAMPLING_CHOICES:
        raise GsmlpError(f"unknown --sampling {sampling!r}: choose one of {', '.join(SAMPLING_CHOICES)}")
    owners = sampling_owners(model)
    traced = TracedSampling(sampling, len(owners))
    originals = [owner.attn for owner in owners]
    try:
        for owner in owners:
            owner.attn = (
                SamplingNodeForExport(traced.levels) if sampling == "op" else LevelwiseDeformableAttention()
            )
        yield traced
    finally:
        for owner, original in zip(owners, originals, strict=True):
            owner.attn = original
