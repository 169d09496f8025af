"""Layer-wise ablation of the MGS design choices, on held-out tokens of saved activation statistics.

    python benchmarks/gate_ablation.py --model M --statistics DIR --out ablation.json

An experiment, not part of gsmlp (formerly `python -m gsmlp.calibration.ablation`).

One factor at a time around `gsmlp calibrate`'s defaults (rank, block size, labels, neuron ordering); for each
FFN and configuration it reports, on held-out images' tokens:
- oracle block sparsity (the most a perfect gate could skip with these blocks and this order);
- the gate's sparsity at neuron recall 0.95 and 0.99;
- at the base target sparsity: neuron recall and the FFN output's relative error
  ||y_gated - y_dense|| / ||y_dense - b2|| (what the next layer actually sees);
- the gate's cost: gate MACs / dense FFN MACs.
AP is measured by `gsmlp calibrate --eval-data` (its sweep); this script argues the choices behind it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gsmlp.calibration.choices import LABELS, ORDERINGS
from gsmlp.calibration.gates import GateTraining, block_targets, layer_block_sizes, train_gate
from gsmlp.calibration.options import CalibrationOptions
from gsmlp.calibration.permutation import neuron_order, oracle_block_sparsity, permute_layer
from gsmlp.calibration.sibs import prune_layer
from gsmlp.calibration.statistics import LayerStatistics, load_statistics
from gsmlp.calibration.thresholds import (
    gated_sparsity,
    neuron_recall,
    threshold_for_recall,
    threshold_for_sparsity,
)
from gsmlp.io import write_json_atomic
from gsmlp.model.gated_mlp import GatedSparseMLP, expand_block_mask
from gsmlp.model.loaders import load_detector
from gsmlp.model.wrap import gated_layers

_DEFAULTS = CalibrationOptions()


@dataclasses.dataclass(frozen=True)
class Variant:
    """One gate design; the base is what `gsmlp calibrate` does by default."""

    rank: int = _DEFAULTS.rank
    block_size: int = _DEFAULTS.block_size
    labels: str = _DEFAULTS.labels
    ordering: str = _DEFAULTS.ordering


def variants() -> list[Variant]:
    base = Variant()
    return [
        base,
        *(dataclasses.replace(base, rank=r) for r in (4, 8, 16, 32, 64) if r != base.rank),
        *(dataclasses.replace(base, block_size=b) for b in (4, 8, 16, 32) if b != base.block_size),
        *(dataclasses.replace(base, labels=label) for label in LABELS if label != base.labels),
        *(dataclasses.replace(base, ordering=o) for o in ORDERINGS if o != base.ordering),
    ]


def measure(
    layer: GatedSparseMLP, stats: LayerStatistics, variant: Variant, target: float, steps: int
) -> dict:
    layer = copy.deepcopy(layer)
    layer.gate = None
    layer.set_mode("dense")
    kept = prune_layer(layer, stats.frequency, 0.0)
    layer.block_size = variant.block_size
    train_x, heldout_x = stats.split(5)
    coactive = stats.coactive[kept][:, kept]
    permute_layer(layer, neuron_order(variant.ordering, coactive, stats.tokens, variant.block_size))
    start = time.perf_counter()
    gate = train_gate(layer, train_x, GateTraining(rank=variant.rank, labels=variant.labels, steps=steps))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits, fired = gate(heldout_x), block_targets(layer, heldout_x).fired
        sizes = layer_block_sizes(layer)
        threshold = threshold_for_sparsity(logits, sizes, layer.dense_hidden, target)
        result = {
            "oracle_block_sparsity": oracle_block_sparsity(
                layer.fc1(heldout_x), layer.block_size, layer.dense_hidden
            ),
            "sparsity_at_recall_0.95": gated_sparsity(
                logits, threshold_for_recall(logits, fired, 0.95), sizes, layer.dense_hidden
            ),
            "sparsity_at_recall_0.99": gated_sparsity(
                logits, threshold_for_recall(logits, fired, 0.99), sizes, layer.dense_hidden
            ),
            f"recall_at_sparsity_{target}": neuron_recall(logits, threshold, fired),
            f"output_error_at_sparsity_{target}": _output_error(layer, heldout_x, logits > threshold),
            "gate_cost_ratio": gate.macs_per_token() / layer.macs_per_token()["dense_ffn"],
            "train_seconds": seconds,
        }
    return result


def _output_error(layer: GatedSparseMLP, x: torch.Tensor, blocks: torch.Tensor) -> float:
    hidden = torch.relu(layer.fc1(x))
    dense = hidden @ layer.fc2.weight.T
    mask = expand_block_mask(blocks, layer.block_size, layer.hidden)
    gated = torch.where(mask, hidden, 0.0) @ layer.fc2.weight.T
    return float((gated - dense).norm() / dense.norm().clamp_min(1e-12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the dense detector the statistics were taken from")
    parser.add_argument("--statistics", required=True, help="a folder with statistics.json/.safetensors")
    parser.add_argument("--layers", default="", help="comma-separated FFNs (default: all)")
    parser.add_argument("--target-sparsity", type=float, default=0.9)
    parser.add_argument("--gate-steps", type=int, default=600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    model = load_detector(args.model).model
    statistics = load_statistics(Path(args.statistics))
    chosen = [n for n in args.layers.split(",") if n] or list(statistics)
    layers = dict(gated_layers(model))
    rows = []
    for name in tqdm(chosen, desc="layers"):
        for variant in variants():
            row = {"layer": name, **dataclasses.asdict(variant)}
            row.update(
                measure(layers[name], statistics[name], variant, args.target_sparsity, args.gate_steps)
            )
            rows.append(row)
    write_json_atomic(args.out, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
