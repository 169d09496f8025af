"""Calibration building blocks: statistics, SIBS pruning, permutation, gate training, thresholds."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gsmlp.calibration.gates import GateTraining, block_targets, layer_block_sizes, train_gate
from gsmlp.calibration.permutation import coactivation_order, oracle_block_sparsity, permute_layer
from gsmlp.calibration.sibs import prune_layer
from gsmlp.calibration.statistics import StatisticsCollector, load_statistics, save_statistics
from gsmlp.calibration.thresholds import (
    gated_sparsity,
    neuron_recall,
    threshold_for_recall,
    threshold_for_sparsity,
)
from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.model.wrap import gated_layers, reset_sparsity, sparsity_report, wrap_ffns
from tests.conftest import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batches(count: int, batch: int = 2, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{"pixel_values": torch.randn(batch, 3, 64, 96, generator=generator)} for _ in range(count)]


def _layer(d_model: int = 16, hidden: int = 96, seed: int = 0) -> GatedSparseMLP:
    torch.manual_seed(seed)
    return GatedSparseMLP(torch.nn.Linear(d_model, hidden), torch.nn.Linear(hidden, d_model), block_size=8)


def test_statistics_match_the_sparsity_meter_and_reservoir_is_bounded(family: str) -> None:
    model = wrap_ffns(make_tiny_model(family))
    reset_sparsity(model)
    collector = StatisticsCollector(model, reservoir_size=100)
    stats = collector.run(_batches(4), total=4)
    report = sparsity_report(model)["per_layer"]
    assert collector.images == 8
    for name, layer_stats in stats.items():
        # Two independent counts of the same zeros: the hook on fc1 and the module's own meter.
        assert layer_stats.tokens == report[name]["tokens"]
        assert layer_stats.zero_fraction == pytest.approx(report[name]["activation_sparsity"], abs=1e-12)
        assert layer_stats.reservoir_x.shape == (min(100, layer_stats.tokens), layer_stats.d_model)
        assert torch.equal(layer_stats.coactive.diagonal(), layer_stats.active_count)
        assert len(layer_stats.reservoir_image.unique()) > 4  # tokens from many images, not the last batch


def test_statistics_round_trip(tmp_path) -> None:
    model = wrap_ffns(make_tiny_model("detr"))
    stats = StatisticsCollector(model, reservoir_size=50).run(_batches(2))
    save_statistics(stats, tmp_path, images=4)
    loaded = load_statistics(tmp_path)
    for name, original in stats.items():
        assert torch.equal(loaded[name].coactive, original.coactive)
        assert torch.equal(loaded[name].reservoir_x, original.reservoir_x)
        assert loaded[name].tokens == original.tokens


def test_statistics_of_another_version_are_refused(tmp_path) -> None:
    model = wrap_ffns(make_tiny_model("detr"))
    save_statistics(StatisticsCollector(model, reservoir_size=5).run(_batches(1)), tmp_path, images=2)
    meta = json.loads((tmp_path / "statistics.json").read_text())
    meta["version"] = 7
    (tmp_path / "statistics.json").write_text(json.dumps(meta))
    with pytest.raises(GsmlpError, match=r"statistics.json: .*version 7"):
        load_statistics(tmp_path)


def test_pruning_dead_neurons_keeps_the_output_within_summation_order() -> None:
    layer = _layer()
    with torch.no_grad():
        layer.fc1.bias[::3] = -1e4  # a third of the neurons can never fire on these inputs
    x = torch.randn(500, 16)
    with torch.no_grad():
        expected = layer(x)
        frequency = (layer.fc1(x) > 0).double().mean(0)
    kept = prune_layer(layer, frequency, epsilon=0.0)
    assert layer.hidden == 64 and layer.dense_hidden == 96
    assert not set(kept.tolist()) & set(range(0, 96, 3))
    with torch.no_grad():
        actual = layer(x)
    # The narrower fc2 sums the same non-zero terms, possibly in another order: equal to fp32 rounding.
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_sibs_on_a_model_with_forced_dead_neurons(family: str) -> None:
    model = wrap_ffns(make_tiny_model(family))
    name, target = next(iter(gated_layers(model)))
    with torch.no_grad():
        target.fc1.bias[: target.hidden // 2] = -1e4
    stats = StatisticsCollector(model, reservoir_size=10).run(_batches(2))
    reference = copy.deepcopy(model)
    for layer_name, layer in gated_layers(model):
        prune_layer(layer, stats[layer_name].frequency, epsilon=0.0)
    assert target.hidden <= target.dense_hidden // 2
    # On the calibration images the pruned neurons never fired: the change is exact there (up to the
    # order of summation); on other images a rarely firing neuron may fire, which is SIBS's approximation.
    pixels = _batches(2)[1]
    with torch.no_grad():
        torch.testing.assert_close(model(**pixels).logits, reference(**pixels).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ordering", ["random", "coactivation"])
def test_permutation_preserves_the_function(ordering: str) -> None:
    layer = _layer()
    x = torch.randn(300, 16)
    with torch.no_grad():
        expected = layer(x)
        fired = (layer.fc1(x) > 0).double()
    if ordering == "random":
        order = torch.randperm(layer.hidden, generator=torch.Generator().manual_seed(3))
    else:
        order = coactivation_order(fired.T @ fired, len(x), layer.block_size)
    permute_layer(layer, order)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)
        assert torch.equal(layer.fc1(x), (x @ layer.fc1.weight.T + layer.fc1.bias))


def test_permutation_refuses_a_non_permutation() -> None:
    layer = _layer()
    with pytest.raises(ValueError, match="not a permutation"):
        permute_layer(layer, torch.zeros(layer.hidden, dtype=torch.int64))


def test_coactivation_order_groups_neurons_that_fire_together() -> None:
    # 4 groups of 8 neurons; each token fires one group: a perfect order puts each group in one block.
    generator = torch.Generator().manual_seed(0)
    group_of = torch.randperm(32, generator=generator) % 4
    token_group = torch.randint(0, 4, (400,), generator=generator)
    pre = torch.where(group_of[None, :] == token_group[:, None], 1.0, -1.0)
    fired = (pre > 0).double()
    order = coactivation_order(fired.T @ fired, 400, block_size=8)
    assert oracle_block_sparsity(pre, 8, 32) < 0.2
    assert oracle_block_sparsity(pre[:, order], 8, 32) == pytest.approx(0.75)


def _structured_tokens(count: int, d_model: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    basis = torch.randn(4, d_model, generator=torch.Generator().manual_seed(99))
    return torch.randn(count, 4, generator=generator) @ basis + 0.1 * torch.randn(
        count, d_model, generator=generator
    )


@pytest.mark.parametrize("target", [0.5, 0.8])
def test_sparsity_threshold_hits_its_target_on_held_out_tokens(target: float) -> None:
    layer = _layer()
    gate = train_gate(layer, _structured_tokens(4000), GateTraining(rank=4, steps=200))
    sizes = layer_block_sizes(layer)
    with torch.no_grad():
        calibration_logits = gate(_structured_tokens(3000, seed=1))
        heldout_logits = gate(_structured_tokens(3000, seed=2))
    threshold = threshold_for_sparsity(calibration_logits, sizes, layer.dense_hidden, target)
    assert gated_sparsity(calibration_logits, threshold, sizes, layer.dense_hidden) >= target - 1e-9
    assert gated_sparsity(heldout_logits, threshold, sizes, layer.dense_hidden) == pytest.approx(
        target, abs=0.02
    )


@pytest.mark.parametrize("target", [0.9, 0.99])
def test_recall_threshold_hits_its_target_on_held_out_tokens(target: float) -> None:
    layer = _layer()
    gate = train_gate(layer, _structured_tokens(4000), GateTraining(rank=4, steps=200))
    calibration_x, heldout_x = _structured_tokens(3000, seed=1), _structured_tokens(3000, seed=2)
    with torch.no_grad():
        threshold = threshold_for_recall(
            gate(calibration_x), block_targets(layer, calibration_x).fired, target
        )
        recall = neuron_recall(gate(heldout_x), threshold, block_targets(layer, heldout_x).fired)
    assert recall == pytest.approx(target, abs=0.01)


def test_trained_gate_beats_an_untrained_one() -> None:
    layer = _layer()
    with torch.no_grad():
        layer.fc1.bias -= 2.0  # about 8 % of the neurons fire: there is sparsity to find
    trained = train_gate(layer, _structured_tokens(4000), GateTraining(rank=4, steps=300))
    untrained = MicroGate(16, layer.num_blocks, 4)
    x = _structured_tokens(3000, seed=2)
    fired = block_targets(layer, x).fired
    sizes = layer_block_sizes(layer)
    sparsity = {}
    with torch.no_grad():
        for label, gate in (("trained", trained), ("untrained", untrained)):
            logits = gate(x)
            sparsity[label] = gated_sparsity(logits, threshold_for_recall(logits, fired, 0.95), sizes, 96)
    oracle = oracle_block_sparsity(layer.fc1(x).detach(), layer.block_size, 96)
    assert sparsity["trained"] > sparsity["untrained"] + 0.05
    assert sparsity["trained"] < oracle
