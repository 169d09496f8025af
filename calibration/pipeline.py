"""From activation statistics to a gated detector: SIBS pruning, neuron permutation, gates, thresholds.

Each FFN is handled on its own (layer-wise): the gate of layer l trains on the tokens that reached
layer l in the dense model, recorded in the statistics reservoir.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from gsmlp.calibration.gates import GateTraining, block_targets, gate_logits, layer_block_sizes, train_gate
from gsmlp.calibration.options import CalibrationOptions
from gsmlp.calibration.permutation import neuron_order, oracle_block_sparsity, permute_layer
from gsmlp.calibration.sibs import prune_layer
from gsmlp.calibration.statistics import LayerStatistics, StatisticsCollector
from gsmlp.calibration.thresholds import (
    SparsityLadder,
    gated_sparsity,
    neuron_recall,
    threshold_for_recall,
)
from gsmlp.distributed import ONE_PROCESS, Group
from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.placement import on_cpu
from gsmlp.model.wrap import gated_layers


@dataclass
class LayerResult:
    """What calibration did to one FFN and what it measured on held-out tokens."""

    name: str
    dense_hidden: int
    hidden: int
    block_size: int
    zero_fraction: float
    frequency: torch.Tensor
    static_sparsity: float
    oracle_sparsity_identity: float | None = None
    oracle_sparsity_permuted: float | None = None
    rank: int | None = None
    threshold: float | None = None
    heldout_sparsity: float | None = None
    heldout_recall: float | None = None
    gate_macs: int = 0
    dense_ffn_macs: int = 0
    heldout_logits: torch.Tensor | None = field(default=None, repr=False)
    heldout_fired: torch.Tensor | None = field(default=None, repr=False)
    # The held-out logits sorted once: every sweep point's threshold reads it (set with heldout_logits).
    heldout_ladder: SparsityLadder | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict:
        keys = (
            "dense_hidden hidden block_size zero_fraction static_sparsity oracle_sparsity_identity "
            "oracle_sparsity_permuted rank threshold heldout_sparsity heldout_recall gate_macs dense_ffn_macs"
        ).split()
        return {key: getattr(self, key) for key in keys}

    def threshold_for(self, target_sparsity: float) -> float:
        return self.heldout_ladder.threshold(self.dense_hidden, target_sparsity)


def calibrate_model(
    model: nn.Module,
    statistics: Mapping[str, LayerStatistics],
    options: CalibrationOptions,
    group: Group = ONE_PROCESS,
) -> dict[str, LayerResult]:
    """Turn every FFN of `model` (wrapped, dense) into its calibrated form, in place."""
    options.validate()
    layers = dict(gated_layers(model))
    missing = sorted(set(layers) ^ set(statistics))
    if missing:
        raise GsmlpError(f"the activation statistics and the model disagree on the FFN layers {missing}")
    results = {}
    with on_cpu(model):  # beside the CPU statistics (gsmlp.model.placement)
        bar = tqdm(layers.items(), desc="calibrating FFNs", unit="layer", disable=not group.is_main)
        for name, layer in bar:
            results[name] = _calibrate_layer(name, layer, statistics[name], options, group)
    return results


def _calibrate_layer(
    name: str, layer: GatedSparseMLP, stats: LayerStatistics, options: CalibrationOptions, group: Group
) -> LayerResult:
    if stats.hidden != layer.hidden:
        raise GsmlpError(f"{name}: statistics have {stats.hidden} hidden neurons, the model {layer.hidden}")
    coactive, frequency = stats.coactive, stats.frequency
    if options.uses_sibs:
        kept = prune_layer(layer, frequency, options.epsilon)
        coactive = coactive[kept][:, kept]
    layer.block_size = options.block_size
    result = LayerResult(
        name=name,
        dense_hidden=layer.dense_hidden,
        hidden=layer.hidden,
        block_size=layer.block_size,
        zero_fraction=stats.zero_fraction,
        frequency=frequency,
        static_sparsity=1.0 - layer.hidden / layer.dense_hidden,
        dense_ffn_macs=layer.macs_per_token()["dense_ffn"],
    )
    gated = options.uses_gates and (options.gate_layers == "all" or name.startswith("encoder."))
    if gated:
        _gate_layer(layer, stats, coactive, options, result, group)
    layer.set_mode("gated" if gated else "static")
    return result


def _gate_layer(
    layer: GatedSparseMLP,
    stats: LayerStatistics,
    coactive: torch.Tensor,
    options: CalibrationOptions,
    result: LayerResult,
    group: Group,
) -> None:
    train_x, heldout_x = stats.split(options.holdout_every)
    if len(train_x) == 0 or len(heldout_x) == 0:
        raise GsmlpError(
            f"{result.name}: too few calibration images to hold out every {options.holdout_every}th "
            "for threshold calibration (use more images)"
        )
    with torch.no_grad():
        result.oracle_sparsity_identity = oracle_block_sparsity(
            layer.fc1(heldout_x), layer.block_size, layer.dense_hidden
        )
    permute_layer(layer, neuron_order(options.ordering, coactive, stats.tokens, layer.block_size))
    with torch.no_grad():
        result.oracle_sparsity_permuted = oracle_block_sparsity(
            layer.fc1(heldout_x), layer.block_size, layer.dense_hidden
        )
    training = GateTraining(
        rank=options.rank, labels=options.labels, steps=options.gate_steps, seed=options.seed, group=group
    )
    gate = train_gate(layer, train_x, training)
    layer.attach_gate(gate, 0.0)
    result.rank = options.rank
    result.gate_macs = gate.macs_per_token()
    fit_threshold(layer, heldout_x, options, result)


def fit_threshold(
    layer: GatedSparseMLP, heldout_x: torch.Tensor, options: CalibrationOptions, result: LayerResult
) -> None:
    """Set the layer's threshold for the target on held-out tokens; record what it reaches there."""
    logits = gate_logits(layer.gate, heldout_x)
    fired = block_targets(layer, heldout_x).fired
    sizes = layer_block_sizes(layer)
    ladder = SparsityLadder.of(logits, sizes)
    if options.target_recall is not None:
        threshold = threshold_for_recall(logits, fired, options.target_recall)
    else:
        threshold = ladder.threshold(layer.dense_hidden, options.target_sparsity)
    layer.threshold.fill_(threshold)
    result.threshold = threshold
    result.heldout_sparsity = gated_sparsity(logits, threshold, sizes, layer.dense_hidden)
    result.heldout_recall = neuron_recall(logits, threshold, fired)
    result.heldout_logits, result.heldout_fired, result.heldout_ladder = logits, fired, ladder


def refit_thresholds(
    model: nn.Module,
    batches: Callable[[], Iterable[Mapping[str, torch.Tensor]]],
    total: int | None,
    results: Mapping[str, LayerResult],
    options: CalibrationOptions,
    reservoir_size: int,
    group: Group = ONE_PROCESS,
    first_image: int = 0,
) -> None:
    """Re-fit every threshold on the inputs each FFN sees once the FFNs before it are gated.

    The gates train on the dense model's tokens, but at run time a layer's input comes from gated layers,
    and its logits drift (measured: a threshold fit for 0.9 on dense inputs gave 0.98 in the last
    encoder layer). Each pass streams the calibration images through the gated model and re-fits the
    thresholds on held-out images' tokens; gates are unchanged.
    """
    for index in range(options.threshold_passes):
        collector = StatisticsCollector(
            model, reservoir_size, options.seed + 1 + index, group=group, first_image=first_image
        )
        stats = collector.run(batches(), total=total)
        with on_cpu(model):
            for name, layer in gated_layers(model):
                if layer.gate is not None:
                    _, heldout_x = stats[name].split(options.holdout_every)
                    fit_threshold(layer, heldout_x, options, results[name])


def set_thresholds(model: nn.Module, results: Mapping[str, LayerResult], target_sparsity: float) -> None:
    """Re-threshold every gated FFN for another target (the AP-vs-sparsity sweep); gates unchanged."""
    for name, layer in gated_layers(model):
        result = results[name]
        if layer.gate is not None and result.heldout_ladder is not None:
            layer.threshold.fill_(result.threshold_for(target_sparsity))
