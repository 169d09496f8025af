"""GatedSparseMLP: dense mode is the original model bit for bit; the masked modes follow docs/op_spec.md."""

from __future__ import annotations

import copy

import pytest
import torch

from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.model.wrap import gated_layers, reset_sparsity, set_mode, sparsity_report, wrap_ffns
from tests.conftest import make_tiny_model


def _pixels(batch: int = 2, height: int = 96, width: int = 128) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(1))


def test_dense_mode_is_bit_exact(family: str) -> None:
    original = make_tiny_model(family)
    wrapped = wrap_ffns(copy.deepcopy(original))
    assert len(list(gated_layers(wrapped))) == 4
    with torch.no_grad():
        expected = original(pixel_values=_pixels())
        actual = wrapped(pixel_values=_pixels())
    assert torch.equal(expected.logits, actual.logits)
    assert torch.equal(expected.pred_boxes, actual.pred_boxes)


def test_state_dict_keys_unchanged_by_wrapping(family: str) -> None:
    original = make_tiny_model(family)
    wrapped = wrap_ffns(copy.deepcopy(original))
    extra = set(wrapped.state_dict()) - set(original.state_dict())
    assert all(key.endswith(".mlp.threshold") for key in extra), sorted(extra)[:3]
    assert set(original.state_dict()) <= set(wrapped.state_dict())


def test_oracle_mode_equals_dense_and_reports_inherent_sparsity(family: str) -> None:
    model = wrap_ffns(make_tiny_model(family), block_size=1)
    with torch.no_grad():
        dense = model(pixel_values=_pixels()).logits
        reset_sparsity(model)
        set_mode(model, "oracle")
        oracle = model(pixel_values=_pixels()).logits
    torch.testing.assert_close(oracle, dense, rtol=1e-5, atol=1e-6)
    report = sparsity_report(model)
    # With block size 1, the oracle skips exactly the zero ReLU outputs.
    assert 0.0 < report["encoder"] < 1.0
    assert report["encoder"] == pytest.approx(report["encoder_activation_sparsity"], abs=1e-9)


def _layer(d_model: int = 16, hidden: int = 40, block_size: int = 8, rank: int = 4) -> GatedSparseMLP:
    torch.manual_seed(0)
    layer = GatedSparseMLP(
        torch.nn.Linear(d_model, hidden), torch.nn.Linear(hidden, d_model), block_size=block_size
    )
    layer.attach_gate(MicroGate(d_model, layer.num_blocks, rank), threshold=0.0)
    layer.set_mode("gated")
    return layer


def _reference(layer: GatedSparseMLP, x: torch.Tensor) -> torch.Tensor:
    logits = layer.gate(x)
    active = ~(logits <= layer.threshold)
    y = layer.fc2.bias.expand(*x.shape[:-1], -1).clone()
    for j in range(layer.num_blocks):
        lo, hi = j * layer.block_size, min((j + 1) * layer.block_size, layer.hidden)
        h = torch.relu(x @ layer.fc1.weight[lo:hi].T + layer.fc1.bias[lo:hi])
        y = y + active[..., j : j + 1] * (h @ layer.fc2.weight[:, lo:hi].T)
    return y


def test_gated_mode_matches_per_block_reference_with_partial_last_block() -> None:
    layer = _layer(hidden=40, block_size=16)  # blocks of 16, 16, 8
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-5, atol=1e-5)


def test_all_blocks_off_gives_bias_and_sparsity_one() -> None:
    layer = _layer()
    layer.threshold.fill_(float("inf"))
    x = torch.randn(7, 16)
    with torch.no_grad():
        y = layer(x)
    assert torch.equal(y, layer.fc2.bias.expand(7, -1))
    assert layer.meter.sparsity == 1.0


def test_meter_times_the_forward_without_its_own_counting() -> None:
    layer = _layer()
    layer.set_mode("dense")
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(64, 16))
    meter = layer.meter
    assert 0.0 < meter.metering_seconds < meter.forward_seconds
    assert meter.seconds == pytest.approx(meter.forward_seconds - meter.metering_seconds)
    meter.enabled = False
    before = meter.forward_seconds
    with torch.no_grad():
        layer(torch.randn(64, 16))
    assert meter.forward_seconds == before  # a disabled meter neither counts nor times
    meter.reset()
    assert meter.forward_seconds == meter.metering_seconds == meter.seconds == 0.0


def test_nan_token_propagates_and_other_tokens_are_unaffected() -> None:
    layer = _layer()
    x = torch.randn(4, 16)
    x[1, 3] = float("nan")
    with torch.no_grad():
        y = layer(x)
        clean = layer(x[[0, 2, 3]])
    assert torch.isnan(y[1]).all()
    torch.testing.assert_close(y[[0, 2, 3]], clean)


def test_empty_token_dimension() -> None:
    layer = _layer()
    with torch.no_grad():
        y = layer(torch.randn(0, 5, 16))
    assert y.shape == (0, 5, 16)


def test_gated_mode_without_gate_is_refused() -> None:
    layer = GatedSparseMLP(torch.nn.Linear(8, 32), torch.nn.Linear(32, 8))
    with pytest.raises(ValueError, match="needs a micro-gate"):
        layer.set_mode("gated")


def test_non_relu_model_is_refused(family: str) -> None:
    model = make_tiny_model(family)
    model.config.activation_function = "gelu"
    with pytest.raises(GsmlpError, match="'gelu'.*ReLU"):
        wrap_ffns(model)


def test_pinned_decisions_replace_the_gate_and_must_fit_the_call() -> None:
    layer = _layer()
    x = torch.randn(2, 5, 16)
    everything = torch.ones(2, 5, layer.num_blocks, dtype=torch.bool)
    layer.pinned_blocks = everything
    torch.testing.assert_close(layer(x), layer.fc2(torch.relu(layer.fc1(x))))
    layer.pinned_blocks = everything[:, :3]
    with pytest.raises(ValueError, match="pinned gate decisions have shape"):
        layer(x)
    layer.pinned_blocks = None
    torch.testing.assert_close(layer(x), _reference(layer, x))
