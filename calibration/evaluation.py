"""COCO AP and measured FFN cost of a (calibrated) detector on an evaluation set."""

from __future__ import annotations

import contextlib

from torch import nn

from gsmlp.calibration.feature_cache import FeatureCache
from gsmlp.data.coco import CocoDataset
from gsmlp.data.evaluate import coco_metrics, detect
from gsmlp.distributed import ONE_PROCESS, Group
from gsmlp.model.detector import LoadedDetector
from gsmlp.model.wrap import gated_layers, reset_sparsity, sparsity_report, sum_sparsity


def evaluate(
    detector: LoadedDetector,
    dataset: CocoDataset,
    batch_size: int = 4,
    limit: int | None = None,
    label: str = "",
    group: Group = ONE_PROCESS,
    cache: FeatureCache | None = None,
) -> dict:
    """{"metrics": COCO metrics in points, "sparsity": sparsity_report, "macs": mac_ratios}, the same on
    every rank: each rank runs its shard of the images, rank 0 scores all of them once. With a cache the
    backbone and input projections run once per batch over every evaluation that shares it."""
    model = detector.model
    reset_sparsity(model)
    desc = f"evaluating {label}".strip()
    with group.together(desc):
        ids = dataset.image_ids if limit is None else dataset.image_ids[:limit]
        shard = dataset.subset(group.shard(ids))
        batches = cache.batches if cache is not None else None
        with cache.installed(model) if cache is not None else contextlib.nullcontext():
            found, _ = detect(detector, shard, batch_size, None, desc, group.is_main, batches)
    sum_sparsity(model, group)
    gathered = group.gather(found)
    with group.together(f"scoring ({desc})"):
        result = None
        if gathered is not None:
            detections = {image_id: found for part in gathered for image_id, found in part.items()}
            if not detections:
                raise dataset.usable_images_error(limit)
            result = {
                "images": len(detections),
                "metrics": coco_metrics(dataset, detections),
                "sparsity": sparsity_report(model),
                "macs": mac_ratios(model),
            }
    return group.broadcast(result)


def mac_ratios(model: nn.Module) -> dict:
    """Token-weighted MAC ratios over the last run, from each FFN's sparsity meter.

    gate_cost_ratio = gate MACs / dense FFN MACs; ffn_mac_ratio = (gate + computed FFN) / dense FFN.
    A computed hidden neuron costs 2 * d_model MACs (its fc1 row and fc2 column).
    """
    ratios = {}
    for part in ("encoder", "decoder", "all"):
        dense = gate = computed = 0
        for name, layer in gated_layers(model):
            if part != "all" and not name.startswith(part + "."):
                continue
            tokens = layer.meter.tokens
            costs = layer.macs_per_token()
            dense += tokens * costs["dense_ffn"]
            gate += tokens * costs["gate"]
            computed += 2 * layer.d_model * layer.meter.computed
        key = "" if part == "all" else f"{part}_"
        ratios[f"{key}gate_cost_ratio"] = gate / dense if dense else 0.0
        ratios[f"{key}ffn_mac_ratio"] = (gate + computed) / dense if dense else 0.0
    return ratios
