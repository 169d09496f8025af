"""gsmlp.exporter.deformable_attention: levelwise sampling equals transformers' and exports with no Concat."""

from __future__ import annotations

import onnx
import pytest
import torch
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

from gsmlp.exporter.deformable_attention import (
    LevelwiseDeformableAttention,
    SamplingNodeForExport,
    sampling_for_export,
)
from gsmlp.exporter.export import ExportOptions, export_onnx
from tests.test_export import SIZE, gated_tiny

LEVELS = [(12, 10), (6, 5), (3, 3), (2, 2)]


def _attention_inputs(batch: int = 2, queries: int = 30, heads: int = 4, head_dim: int = 8, points: int = 3):
    generator = torch.Generator().manual_seed(0)
    tokens = sum(height * width for height, width in LEVELS)
    value = torch.randn(batch, tokens, heads, head_dim, generator=generator)
    # Locations reach past [0, 1], where zero padding applies.
    locations = torch.rand(batch, queries, heads, len(LEVELS), points, 2, generator=generator) * 1.6 - 0.3
    weights = torch.softmax(torch.randn(batch, queries, heads, len(LEVELS) * points, generator=generator), -1)
    shapes = torch.tensor(LEVELS)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    weights = weights.view(batch, queries, heads, len(LEVELS), points)
    return value, shapes, LEVELS, starts, locations, weights, 64


def test_levelwise_sum_equals_transformers_stacked_sum() -> None:
    inputs = _attention_inputs()
    expected = MultiScaleDeformableAttention()(*inputs)
    actual = LevelwiseDeformableAttention()(*inputs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampling", ["op", "inline"])
def test_swap_is_undone_and_counts_the_modules(sampling: str) -> None:
    model = gated_tiny("deformable-detr")
    originals = [m for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]
    stand_in = SamplingNodeForExport if sampling == "op" else LevelwiseDeformableAttention
    with sampling_for_export(model, sampling) as swapped:
        assert swapped.modules == len(originals) > 0
        assert not any(isinstance(m, MultiScaleDeformableAttention) for m in model.modules())
        assert sum(isinstance(m, stand_in) for m in model.modules()) == len(originals)
    assert [m for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)] == originals
    with sampling_for_export(gated_tiny("detr"), sampling) as swapped:
        assert swapped.modules == 0


def _source_op(name: str, producers: dict[str, onnx.NodeProto]) -> str | None:
    """The op that made tensor `name`, looking through the reshapes that torch.stack traces to."""
    node = producers.get(name)
    while node is not None and node.op_type in ("Unsqueeze", "Reshape", "Flatten"):
        node = producers.get(node.input[0])
    return None if node is None else node.op_type


def test_exported_sampling_has_no_concat_of_samples(tmp_path) -> None:
    path = tmp_path / "deformable.onnx"
    options = ExportOptions(height=SIZE[0], width=SIZE[1], sampling="inline")
    export_onnx(gated_tiny("deformable-detr"), path, options)
    graph = onnx.load(path).graph
    producers = {output: node for node in graph.node for output in node.output}
    concats = [node for node in graph.node if node.op_type == "Concat"]
    concat_sources = [_source_op(name, producers) for node in concats for name in node.input]
    assert sum(node.op_type == "GridSample" for node in graph.node) > 0
    assert "GridSample" not in concat_sources
