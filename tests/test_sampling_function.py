"""The local function gsmlp::MultiScaleDeformableAttention, alone in a one-node model, through real ONNX
Runtime (no op library registered), against transformers' MultiScaleDeformableAttention."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

from gsmlp.exporter.sampling_function import multi_scale_deformable_attention_function, sampling_levels
from gsmlp.op_identity import DOMAIN, MSDA_OP_TYPE
from gsmlp.validation.msda_bench import op_model

# The contract's bound between an implementation and transformers' module (fp32).
BOUND = 1e-5
R50_LEVELS = [(100, 100), (50, 50), (25, 25), (13, 13)]


def one_node_model(levels: int, dtype: str = "fp32") -> onnx.ModelProto:
    """value, spatial_shapes, level_start_index, sampling_locations, attention_weights -> output: the
    node as the exporter writes it, with its local function (the bench's model), checked in full."""
    model = op_model(levels, dtype)
    onnx.checker.check_model(model, full_check=True)
    return model


def attention_case(levels, batch=2, queries=30, heads=4, head_dim=8, points=3, seed=0, spread=(-0.3, 1.3)):
    """Random inputs in transformers' layout; locations spread over `spread`, past [0, 1] by default."""
    generator = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.long)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    value = torch.randn(batch, int(sizes.sum()), heads, head_dim, generator=generator)
    low, high = spread
    locations = torch.rand(batch, queries, heads, len(levels), points, 2, generator=generator)
    locations = locations * (high - low) + low
    weights = torch.randn(batch, queries, heads, len(levels) * points, generator=generator).softmax(-1)
    weights = weights.view(batch, queries, heads, len(levels), points)
    return value, shapes, starts, locations, weights


def transformers_reference(value, shapes, starts, locations, weights) -> torch.Tensor:
    levels = [tuple(int(v) for v in row) for row in shapes]
    return MultiScaleDeformableAttention()(value, shapes, levels, starts, locations, weights, 64)


def run_body(model: onnx.ModelProto, value, shapes, starts, locations, weights, dtype=np.float32):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {
        "value": value.numpy().astype(dtype),
        "spatial_shapes": shapes.numpy().astype(np.int32),
        "level_start_index": starts.numpy().astype(np.int32),
        "sampling_locations": locations.numpy().astype(dtype),
        "attention_weights": weights.numpy().astype(dtype),
    }
    return session.run(None, feeds)[0]


CASES = {
    "four levels, locations outside [0, 1]": dict(levels=[(12, 10), (6, 5), (3, 3), (2, 2)]),
    "one level": dict(levels=[(7, 9)]),
    "a 1x1 and a 1x2 level": dict(levels=[(5, 4), (1, 2), (1, 1)]),
    "batch 1, one query head": dict(levels=[(8, 8), (4, 4)], batch=1, heads=1, queries=5),
    "far outside the levels": dict(levels=[(6, 6), (3, 3)], spread=(-2.0, 3.0)),
    "the R50 encoder's levels, few queries": dict(
        levels=R50_LEVELS, queries=20, heads=8, head_dim=32, points=4
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_body_equals_transformers(case) -> None:
    inputs = attention_case(**case)
    expected = transformers_reference(*inputs).numpy()
    actual = run_body(one_node_model(len(case["levels"])), *inputs)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= BOUND


def test_locations_on_pixel_borders() -> None:
    levels = [(6, 4), (3, 2)]
    value, shapes, starts, locations, weights = attention_case(levels, queries=16)
    # x * W - 0.5 an integer or a half: pixel centres, pixel edges, the level's own border.
    grid = torch.tensor([0.0, 1 / 12, 1 / 8, 0.25, 0.5, 0.75, 1.0, 1.125])
    pick = torch.randint(0, len(grid), locations.shape, generator=torch.Generator().manual_seed(1))
    locations = grid[pick]
    expected = transformers_reference(value, shapes, starts, locations, weights).numpy()
    actual = run_body(one_node_model(len(levels)), value, shapes, starts, locations, weights)
    assert np.abs(actual - expected).max() <= BOUND


def test_no_queries_and_no_batch() -> None:
    levels = [(4, 4), (2, 2)]
    model = one_node_model(len(levels))
    for batch, queries in ((2, 0), (0, 5)):
        inputs = attention_case(levels, batch=batch, queries=queries)
        actual = run_body(model, *inputs)
        assert actual.shape == (batch, queries, 4 * 8)


def test_fp16_body_samples_in_float32() -> None:
    levels = [(12, 10), (6, 5), (3, 3), (2, 2)]
    inputs = attention_case(levels)
    rounded = [t.half().float() if t.is_floating_point() else t for t in inputs]
    expected = transformers_reference(*rounded).numpy()
    actual = run_body(one_node_model(len(levels), "fp16"), *rounded, dtype=np.float16)
    assert actual.dtype == np.float16
    # float32 inside, one rounding of the output: within half an fp16 ulp of |output| <= 4, plus fp32 noise.
    assert np.abs(actual.astype(np.float32) - expected).max() <= 2**-10 + BOUND


def test_wrong_number_of_levels_is_an_error() -> None:
    inputs = attention_case([(4, 4), (2, 2), (1, 1)])
    with pytest.raises(Exception, match="(?i)reshape"):
        run_body(one_node_model(2), *inputs)


def test_value_length_must_match_the_levels() -> None:
    value, shapes, starts, locations, weights = attention_case([(4, 4), (2, 2)])
    with pytest.raises(Exception, match="(?i)reshape"):
        run_body(one_node_model(2), value[:, :-1], shapes, starts, locations, weights)


def test_one_grid_sample_per_level() -> None:
    for levels in (1, 4, 5):
        function = multi_scale_deformable_attention_function(levels)
        assert sampling_levels(function) == levels
        assert (function.domain, function.name) == (DOMAIN, MSDA_OP_TYPE)
        assert list(function.attribute) == ["plugin_version", "plugin_namespace"]
    with pytest.raises(ValueError, match="at least 1 level"):
        multi_scale_deformable_attention_function(0)
