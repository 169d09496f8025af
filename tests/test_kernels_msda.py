"""The MultiScaleDeformableAttention CPU kernel (torch op gsmlp::multi_scale_deformable_attention) against
transformers' own MultiScaleDeformableAttention module, per docs/op_spec.md.

fp32: |kernel - transformers| <= 1e-5 (the contract's bound; the summation order differs, so not bit-exact).
fp16: judged against the float64 reference on the same fp16-rounded inputs. The kernel computes positions,
corner weights and the sum in fp32 and rounds the output once, so it may differ by half an fp16 ulp of the
result, at most 2^-11 |ref| (round to nearest), plus the fp32 arithmetic before that rounding (<= 1e-5).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gsmlp import kernels
from gsmlp.errors import GsmlpError, NotBuiltError
from gsmlp.kernels import _library as L
from gsmlp.kernels import _msda
from tests.conftest import REPO_ROOT
from tests.test_sampling_function import BOUND, R50_LEVELS, attention_case, transformers_reference

pytestmark = pytest.mark.skipif(not kernels.available(), reason=f"no kernel library: {L.why_not_loaded()}")

FP16_RELATIVE = 2.0**-11  # half an fp16 ulp, relative: the output's one rounding


def run(inputs, threads: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    value, shapes, starts, locations, weights = inputs
    return kernels.multi_scale_deformable_attention(
        value.to(dtype), shapes, starts, locations.to(dtype), weights.to(dtype), threads
    )


def border_locations(shape: tuple[int, ...], levels, seed: int = 1) -> torch.Tensor:
    """x * W - 0.5 an integer or a half (pixel centres and edges), also just outside: exact in fp32 in both
    implementations where every H and W is a power of two."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(levels, dtype=torch.float32).flip(-1)  # (W, H) per level
    steps = torch.randint(-2, 2 * int(sizes.max()) + 3, shape, generator=generator).float()
    return steps / (2 * sizes[None, None, None, :, None, :])


def padded_batch(levels, seed: int = 2):
    """Batch 2, the second image padded: its values zero outside the valid part of each level (as Deformable
    DETR's masked_fill) and its locations scaled by the valid ratios, as the model's reference points are."""
    value, shapes, starts, locations, weights = attention_case(levels, batch=2, seed=seed, spread=(0.0, 1.0))
    valid_w, valid_h = 0.6, 0.75
    for (h, w), start in zip(levels, starts.tolist(), strict=True):
        grid = value[1, start : start + h * w].view(h, w, *value.shape[2:])
        grid[round(h * valid_h) :] = 0
        grid[:, round(w * valid_w) :] = 0
    locations[1] = locations[1] * torch.tensor([valid_w, valid_h])
    return value, shapes, starts, locations, weights


CASES = {
    "four levels, locations outside [0, 1]": lambda: attention_case([(12, 10), (6, 5), (3, 3), (2, 2)]),
    "a 1x1 level": lambda: attention_case([(5, 4), (1, 2), (1, 1)]),
    "far outside the levels": lambda: attention_case([(6, 6), (3, 3)], spread=(-2.0, 3.0)),
    "batch 2 with padding": lambda: padded_batch([(8, 10), (4, 5), (2, 3)]),
    "R50 encoder levels, 32 channels": lambda: attention_case(
        R50_LEVELS, queries=40, heads=8, head_dim=32, points=4
    ),  # fmt: skip
    "13 channels (vector tails)": lambda: attention_case([(7, 5), (3, 2)], head_dim=13),
    "40 channels": lambda: attention_case([(7, 5), (3, 2)], head_dim=40, heads=1),
    "64 channels, one point": lambda: attention_case([(7, 5), (3, 2)], head_dim=64, points=1),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_transformers(case) -> None:
    inputs = case()
    expected = transformers_reference(*inputs)
    actual = run(inputs)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    assert (actual - expected).abs().max() <= BOUND


def test_locations_exactly_on_pixel_borders() -> None:
    levels = [(4, 8), (2, 4), (2, 2), (1, 1)]
    value, shapes, starts, locations, weights = attention_case(levels, queries=64)
    locations = border_locations(locations.shape, levels)
    inputs = (value, shapes, starts, locations, weights)
    assert (run(inputs) - transformers_reference(*inputs)).abs().max() <= BOUND


@pytest.mark.parametrize(("batch", "queries"), [(2, 0), (0, 5)])
def test_no_queries_and_no_batch(batch: int, queries: int) -> None:
    inputs = attention_case([(4, 4), (2, 2)], batch=batch, queries=queries)
    assert run(inputs).shape == (batch, queries, 4 * 8)


@pytest.mark.parametrize("case", ["four levels, locations outside [0, 1]", "batch 2 with padding"])
def test_fp16_computes_in_fp32_and_rounds_once(case: str) -> None:
    inputs = CASES[case]()
    rounded = [t.half() if t.is_floating_point() else t for t in inputs]
    expected = transformers_reference(*[t.double() if t.is_floating_point() else t for t in rounded])
    actual = run(rounded, dtype=torch.float16)
    assert actual.dtype == torch.float16
    error = (actual.double() - expected).abs()
    assert (error <= FP16_RELATIVE * expected.abs() + BOUND).all(), error.max()
    # Against the fp32 kernel on the same values: nothing but the output's rounding differs.
    fp32 = run([t.float() if t.is_floating_point() else t for t in rounded])
    assert ((actual.float() - fp32).abs() <= FP16_RELATIVE * fp32.abs() + 1e-7).all()


def test_threads_do_not_change_a_bit() -> None:
    inputs = attention_case([(12, 10), (6, 5)], queries=200)
    one = run(inputs, threads=1)
    for threads in (2, 3, 7):
        assert torch.equal(run(inputs, threads=threads), one)


def test_int32_and_int64_level_tables_and_strided_inputs() -> None:
    value, shapes, starts, locations, weights = attention_case([(6, 5), (3, 3)])
    expected = run((value, shapes, starts, locations, weights))
    int32 = run((value, shapes.int(), starts.int(), locations, weights))
    strided = kernels.multi_scale_deformable_attention(
        value.transpose(0, 1).contiguous().transpose(0, 1), shapes, starts, locations, weights
    )
    assert torch.equal(int32, expected) and torch.equal(strided, expected)


def test_nan_and_inf_propagate_as_in_transformers() -> None:
    value, shapes, starts, locations, weights = attention_case([(6, 5), (3, 3)], batch=1, queries=6)
    locations[0, 0, 0, 0, 0, 0] = float("nan")  # a NaN position: that query and head all NaN
    locations[0, 1, 1, 1, 2, 1] = float("inf")
    weights[0, 2, 2, 0, 1] = float("nan")  # a NaN attention weight, even for a sample off the grid
    locations[0, 2, 2, 0, 1] = 5.0
    weights[0, 3, 3, 1, 0] = float("inf")
    value[0, 7, 0, :] = float("inf")  # an Inf value: Inf or NaN (0 x Inf) where a corner touches it
    locations[0, 4, 0, 0, :, 0] = (2 + 0.5) / 5  # pixel centres: corners of weight 0 next to them
    locations[0, 4, 0, 0, :, 1] = (1 + 0.5) / 6
    inputs = (value, shapes, starts, locations, weights)
    expected, actual = transformers_reference(*inputs), run(inputs)
    assert torch.equal(actual.isnan(), expected.isnan())
    assert torch.equal(actual.isinf(), expected.isinf())
    finite = expected.isfinite()
    assert (actual[finite] - expected[finite]).abs().max() <= BOUND
    assert actual.isnan().any() and actual.isinf().any()


def test_bad_level_tables_are_named() -> None:
    value, shapes, starts, locations, weights = attention_case([(6, 5), (3, 3)])
    with pytest.raises(GsmlpError, match=r"value has S = 38 rows but the levels hold 39"):
        kernels.multi_scale_deformable_attention(value[:, :38], shapes, starts, locations, weights)
    with pytest.raises(GsmlpError, match=r"level_start_index\[1\] is 31 but the levels before it hold 30"):
        kernels.multi_scale_deformable_attention(value, shapes, torch.tensor([0, 31]), locations, weights)
    with pytest.raises(GsmlpError, match=r"spatial_shapes\[1\] is \(0, 3\)"):
        kernels.multi_scale_deformable_attention(
            value, torch.tensor([[6, 5], [0, 3]]), starts, locations, weights
        )


def test_bad_shapes_and_types_are_named() -> None:
    value, shapes, starts, locations, weights = attention_case([(6, 5), (3, 3)], heads=4)
    op = kernels.multi_scale_deformable_attention
    with pytest.raises(GsmlpError, match=r"sampling_locations has shape \[2, 30, 3, 2, 3, 2\], expected"):
        op(value, shapes, starts, locations[:, :, :3], weights)
    with pytest.raises(GsmlpError, match="value must have 4 dimensions"):
        op(value[0], shapes, starts, locations, weights)
    with pytest.raises(
        GsmlpError, match="attention_weights has dtype torch.float16 but value has torch.float32"
    ):
        op(value, shapes, starts, locations, weights.half())
    with pytest.raises(GsmlpError, match="value has dtype torch.float64"):
        op(value.double(), shapes, starts, locations.double(), weights.double())
    with pytest.raises(GsmlpError, match="spatial_shapes has dtype torch.float32"):
        op(value, shapes.float(), starts, locations, weights)


def test_fake_and_schema_hold_for_tracing() -> None:
    inputs = attention_case([(4, 4), (2, 2)], queries=3)
    torch.library.opcheck(
        torch.ops.gsmlp.multi_scale_deformable_attention.default, (*inputs, 1),
        test_utils=("test_schema", "test_faketensor"),
    )  # fmt: skip
    with torch._subclasses.fake_tensor.FakeTensorMode():
        value = torch.empty(2, 20, 4, 8)
        out = kernels.multi_scale_deformable_attention(
            value, torch.empty(2, 2, dtype=torch.int64), torch.empty(2, dtype=torch.int64),
            torch.empty(2, 7, 4, 2, 3, 2), torch.empty(2, 7, 4, 2, 3),
        )  # fmt: skip
        assert out.shape == (2, 7, 32)


def test_without_the_library_it_says_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_msda.L, "load", lambda: None)
    with pytest.raises(NotBuiltError, match="not built"):
        run(attention_case([(4, 4)]))


FORCED_ISA_SCRIPT = """
import sys
sys.path.append(".")  # after gsmlp: the checkout's tests, without its source folder shadowing a plain install
from gsmlp import kernels
from tests import test_kernels_msda as t
assert kernels.cpu_isa() == sys.argv[1], kernels.cpu_isa()
for name, case in t.CASES.items():
    inputs = case()
    error = (t.run(inputs) - t.transformers_reference(*inputs)).abs().max()
    assert error <= t.BOUND, (name, float(error))
t.test_fp16_computes_in_fp32_and_rounds_once("four levels, locations outside [0, 1]")
t.test_nan_and_inf_propagate_as_in_transformers()
print("forced isa ok")
"""


@pytest.mark.parametrize(("forced", "isa"), [("portable", "portable"), ("avx2", "avx2-fma")])
def test_lesser_code_paths_match_transformers(forced: str, isa: str) -> None:
    # GSMLP_CPU_ISA is read once per process: a subprocess per forced path, so this machine tests each it has.
    if forced == "avx2" and kernels.cpu_isa() not in ("avx512f", "avx2-fma"):
        pytest.skip(f"this CPU has no AVX2/FMA/F16C (code path {kernels.cpu_isa()!r})")
    env = dict(os.environ, GSMLP_CPU_ISA=forced)
    result = subprocess.run(
        [sys.executable, "-c", FORCED_ISA_SCRIPT, isa], env=env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0 and "forced isa ok" in result.stdout, result.stderr[-2000:]
