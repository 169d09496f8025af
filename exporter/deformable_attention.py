"""Deformable DETR's multi-scale sampling for export: each level's samples are weighted as they are drawn.

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

import torch
from torch import nn
from torch.nn import functional as F
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention


class LevelwiseDeformableAttention(nn.Module):
    """The forward of transformers' MultiScaleDeformableAttention, summed level by level."""

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
        batch, _, heads, head_dim = value.shape
        _, queries, _, _, points, _ = sampling_locations.shape
        values = value.split([height * width for height, width in value_spatial_shapes_list], dim=1)
        grids = 2 * sampling_locations - 1
        output = None
        for level, (height, width) in enumerate(value_spatial_shapes_list):
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


@contextlib.contextmanager
def levelwise_deformable_attention(model: nn.Module) -> Iterator[int]:
    """Swap every MultiScaleDeformableAttention of `model` for the levelwise form, in place, and back after.

    Yields how many were swapped (0 for DETR, which has none).
    """
    swaps = [
        (owner, name, child)
        for owner in model.modules()
        for name, child in owner.named_children()
        if isinstance(child, MultiScaleDeformableAttention)
    ]
    try:
        for owner, name, _ in swaps:
            setattr(owner, name, LevelwiseDeformableAttention())
        yield len(swaps)
    finally:
        for owner, name, original in swaps:
            setattr(owner, name, original)
