"""The calibration workflow (`gsmlp calibrate`, and the demo's first step): load, collect statistics,
calibrate, evaluate, sweep, write. It takes a CalibrationJob; the command line only fills one in."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from gsmlp.calibration.analysis import analyze, write_analysis
from gsmlp.calibration.choices import DEFAULT_SWEEP
from gsmlp.calibration.feature_cache import MB, FeatureCache
from gsmlp.calibration.images import image_batches, model_inputs
from gsmlp.calibration.options import CalibrationJob, CalibrationOptions
from gsmlp.calibration.pipeline import calibrate_model, refit_thresholds, set_thresholds
from gsmlp.calibration.report import heldout_estimate, write_report
from gsmlp.calibration.statistics import NoCalibrationImages, StatisticsCollector, save_statistics
from gsmlp.distributed import ONE_PROCESS, Group, shard_bounds
from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory
from gsmlp.model.checkpoint import GSMLP_META, save_gated
from gsmlp.model.detector import LoadedDetector
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.kernel_hook import install as install_kernel
from gsmlp.model.loaders import load_detector
from gsmlp.model.placement import on_cpu
from gsmlp.model.wrap import gated_layers, gated_slots, set_mode
from gsmlp.paths import folder_output

if TYPE_CHECKING:  # the data stage is imported where a dataset is read (see calibrate)
    from gsmlp.data.coco import CocoDataset

# What `gsmlp calibrate --out DIR` writes; an existing DIR is replaced only if it looks like this.
ANALYSIS_FILES = ("statistics.json", "statistics.safetensors", "analysis.json", "analysis.png")
CHECKPOINT_FILES = ("calibration.json", "calibration.md", "calibration.png", "config.json",
                    "preprocessor_config.json", "model.safetensors", GSMLP_META)  # fmt: skip
CALIBRATE_OUTPUT = folder_output(
    "an earlier output of gsmlp calibrate (statistics.json, analysis.json, ...)",
    required=("statistics.json", "analysis.json"),
    allowed=ANALYSIS_FILES + CHECKPOINT_FILES,
)


def sweep_values(job: CalibrationJob) -> list[float]:
    """--sweep as numbers, each a valid target sparsity (MGS) or epsilon (SIBS)."""
    sibs = job.method.method == "sibs"
    text = job.sweep if job.sweep is not None else DEFAULT_SWEEP["sibs" if sibs else "mgs"]
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GsmlpError(f"--sweep {text!r}: give comma-separated numbers such as 0.5,0.8,0.9") from None
    high = "1)" if sibs else "1]"
    bad = [v for v in values if not (0.0 <= v < 1.0 if sibs else 0.0 <= v <= 1.0)]  # NaN fails both
    if bad:
        raise GsmlpError(f"--sweep {text!r}: {bad[0]} is outside [0, {high}")
    return values


def check_job(job: CalibrationJob) -> None:
    """The options' own consistency, before a model is loaded: method settings and sweep values."""
    if not job.analyze_only:
        job.method.validate()
    sweep_values(job)


def _load(job: CalibrationJob) -> LoadedDetector:
    return load_detector(job.model, block_size=job.method.block_size, sampling=job.torch_sampling)


def calibrate(job: CalibrationJob, group: Group = ONE_PROCESS, detector: LoadedDetector | None = None) -> str:
    """Run the job; returns what was written ("analysis" or "checkpoint") into job.out.

    detector: job.model as the caller loaded it (`gsmlp calibrate` loads through the CLI's one loader, as
    every command does); None loads it here.

    Under torchrun every rank runs the job on its contiguous shard of the images: statistics are summed
    over ranks, gates train data-parallel on the merged reservoir, evaluations are scored once on rank 0,
    and only rank 0 writes job.out, after every rank has agreed that its part succeeded.
    """
    check_job(job)
    options = None if job.analyze_only else job.method
    values = sweep_values(job)
    with group.together("loading the model and data"):
        detector = detector if detector is not None else _load(job)
        if detector.gated is not None:
            raise GsmlpError(f"--model {job.model} is already a gated checkpoint; calibrate the dense model")
        detector.model.to(group.torch_device(job.device))
        # The data stage is imported on use, so that `gsmlp --help` never depends on it.
        from gsmlp.data.coco import resolve_dataset

        full_set = resolve_dataset(job.data, job.images)
        eval_set = resolve_dataset(job.eval_data, job.eval_images) if job.eval_data else None
    ids = full_set.image_ids if job.limit is None else full_set.image_ids[: job.limit]
    calibration_set = full_set.subset(group.shard(ids))
    first_image = shard_bounds(len(ids), group.rank, group.world_size)[0]
    shard = functools.partial(_Shard, calibration_set, first_image, group)
    timings: dict[str, float] = {}
    output = atomic_directory(job.out, CALIBRATE_OUTPUT, force=job.force) if group.is_main else nullcontext()
    with output as folder:
        collector, stats = _collect(detector, shard(), job, timings)
        with group.together("writing the statistics"):
            if group.is_main:
                save_statistics(stats, folder, collector.images)
                source = {"model": job.model, "data": job.data, "images": collector.images}
                write_analysis(analyze(stats, collector.images, source), stats, folder)
        if options is None:
            return "analysis"
        # The evaluations (dense, gated, each sweep point) see the same batches through the same backbone:
        # with the cache it runs once per batch, and the sweep's points run only the transformer.
        cache = FeatureCache(int(job.sweep_cache_mb * MB)) if job.sweep_cache_mb > 0 and eval_set else None
        evaluate = functools.partial(_evaluate, detector, eval_set, job, group=group, cache=cache)
        dense_eval = _timed(timings, "eval_dense_s", lambda: evaluate("dense"))
        # A SIBS sweep prunes the dense FFNs afresh at each point: copies of them, taken before calibrating.
        dense_ffns = _ffn_copies(detector.model) if eval_set and options.method == "sibs" else None
        start = time.perf_counter()
        results = calibrate_model(detector.model, stats, options, group)
        timings["calibrate_s"] = time.perf_counter() - start
        if options.uses_gates:
            start = time.perf_counter()
            batches = functools.partial(_calibration_batches, detector, calibration_set, None)
            refit_thresholds(
                detector.model,
                batches,
                len(calibration_set),
                results,
                options,
                job.reservoir,
                group,
                first_image,
            )
            timings["threshold_refit_s"] = time.perf_counter() - start
        # The gated evaluations measure what a gated checkpoint computes: through the kernel op where it is
        # built, as a loaded checkpoint runs (the PyTorch reference computes every neuron, then masks).
        install_kernel(detector.model)
        gated_eval = _timed(timings, "eval_gated_s", lambda: evaluate("gated"))
        sweep = (
            _timed(
                timings,
                "sweep_s",
                lambda: _sweep(detector, stats, results, eval_set, values, job, group, cache, dense_ffns),
            )
            if eval_set
            else []
        )
        with group.together("writing the checkpoint"):
            if group.is_main:
                report = _report(
                    job, detector, collector, stats, results, dense_eval, gated_eval, sweep, timings
                )
                report["distributed"] = group.report(collector.images_per_rank or [collector.images])
                report["sweep_cache"] = cache.summary() if cache is not None else None
                write_report(report, folder)
                with on_cpu(detector.model):
                    _save_checkpoint(folder, detector, report)
    return "checkpoint"


@dataclass(frozen=True)
class _Shard:
    """This rank's calibration images: the shard, where it starts among all images, and the group."""

    dataset: CocoDataset
    first_image: int
    group: Group


def _collect(detector: LoadedDetector, shard: _Shard, job: CalibrationJob, timings):
    set_mode(detector.model, "dense")
    collector = StatisticsCollector(
        detector.model, job.reservoir, job.method.seed, group=shard.group, first_image=shard.first_image
    )
    start = time.perf_counter()
    try:
        batches = _calibration_batches(detector, shard.dataset, None)
        stats = collector.run(batches, total=len(shard.dataset))
    except NoCalibrationImages:
        raise shard.dataset.usable_images_error() from None
    timings["statistics_s"] = time.perf_counter() - start
    return collector, stats


def _calibration_batches(detector: LoadedDetector, dataset, limit: int | None):
    # One image per batch: padded positions would add tokens that no real image has to the statistics.
    return (model_inputs(batch) for _, batch in image_batches(dataset, detector.preprocess, 1, limit))


def _timed(timings: dict, key: str, work):
    start = time.perf_counter()
    result = work()
    timings[key] = time.perf_counter() - start
    return result


def _evaluate(
    detector: LoadedDetector,
    dataset,
    job: CalibrationJob,
    label: str,
    group: Group = ONE_PROCESS,
    cache: FeatureCache | None = None,
) -> dict | None:
    if dataset is None:
        return None
    from gsmlp.calibration.evaluation import evaluate

    return evaluate(detector, dataset, limit=job.eval_limit, label=label, group=group, cache=cache)


def _sweep(
    detector,
    stats,
    results,
    eval_set,
    values,
    job: CalibrationJob,
    group: Group,
    cache: FeatureCache | None,
    dense_ffns: dict[str, GatedSparseMLP] | None,
) -> list[dict]:
    """AP and measured sparsity at each sweep value; the model's own thresholds (MGS) or FFNs (SIBS) are
    restored after. With the cache the points run only the transformer: the evaluations before them
    computed the rest. SIBS prunes copies of `dense_ffns` in the detector's slots: one model, loaded once."""
    points = []
    for value in values:
        if dense_ffns is not None:
            with _ffns_in_place(detector.model, _copied(dense_ffns)):
                calibrate_model(detector.model, stats, CalibrationOptions(method="sibs", epsilon=value))
                measured = _evaluate(detector, eval_set, job, f"sweep {value}", group, cache)
        else:
            set_thresholds(detector.model, results, value)
            measured = _evaluate(detector, eval_set, job, f"sweep {value}", group, cache)
        points.append(
            {
                "value": value,
                "encoder": measured["sparsity"]["encoder"],
                "decoder": measured["sparsity"]["decoder"],
                "ffn_mac_ratio": measured["macs"]["ffn_mac_ratio"],
                "AP": measured["metrics"]["AP"],
                "AP50": measured["metrics"]["AP50"],
            }
        )
    layers = dict(gated_layers(detector.model))
    for name, result in results.items():
        if result.threshold is not None:
            layers[name].threshold.fill_(result.threshold)
    return points


def _ffn_copies(model: nn.Module) -> dict[str, GatedSparseMLP]:
    """Every FFN of `model`, copied, by module path. The FFNs alone, not the detector: the padding fix's
    hooks share state with the model they were installed on, so a deep-copied detector would compute with
    the original's pixel mask."""
    return _copied({slot.path: layer for slot, layer in gated_slots(model)})


def _copied(ffns: dict[str, GatedSparseMLP]) -> dict[str, GatedSparseMLP]:
    return {path: copy.deepcopy(layer) for path, layer in ffns.items()}


@contextmanager
def _ffns_in_place(model: nn.Module, ffns: dict[str, GatedSparseMLP]) -> Iterator[None]:
    """`ffns` (module path -> FFN) in the model's FFN slots for the block, the model's own FFNs after."""
    slots = {slot.path: slot for slot, _ in gated_slots(model)}
    own = {path: slot.owner.mlp for path, slot in slots.items()}
    try:
        for path, layer in ffns.items():
            slots[path].owner.mlp = layer
        yield
    finally:
        for path, layer in own.items():
            slots[path].owner.mlp = layer


def _report(
    job: CalibrationJob, detector, collector, stats, results, dense_eval, gated_eval, sweep, timings
) -> dict:
    options = job.method
    if gated_eval is not None:
        sparsity, macs = gated_eval["sparsity"], gated_eval["macs"]
        measured_on = f"{job.eval_data}, {gated_eval['images']} images"
    else:
        estimate = heldout_estimate(results, {name: s.tokens for name, s in stats.items()})
        sparsity, macs = estimate, estimate
        measured_on = "held-out calibration tokens (no --eval-data)"
    return {
        "model": job.model,
        "family": detector.family,
        "method": options.method,
        "device": job.device,
        "options": {k: v for k, v in vars(options).items()},
        "calibration_data": {"data": job.data, "images": collector.images},
        "measured_on": measured_on,
        "ffn_sparsity": {
            "encoder": sparsity["encoder"],
            "decoder": sparsity["decoder"],
            "per_layer": sparsity["per_layer"],
        },
        "gate_cost_ratio": macs["gate_cost_ratio"],
        "ffn_mac_ratio": macs["ffn_mac_ratio"],
        "encoder_gate_cost_ratio": macs["encoder_gate_cost_ratio"],
        "encoder_ffn_mac_ratio": macs["encoder_ffn_mac_ratio"],
        "AP_dense": dense_eval["metrics"]["AP"] if dense_eval else None,
        "AP_gated": gated_eval["metrics"]["AP"] if gated_eval else None,
        "metrics_dense": dense_eval["metrics"] if dense_eval else None,
        "metrics_gated": gated_eval["metrics"] if gated_eval else None,
        "layers": {name: result.summary() for name, result in results.items()},
        "sweep_variable": "epsilon" if options.method == "sibs" else "target sparsity",
        "sweep": sweep,
        "timings_s": timings,
    }


def _save_checkpoint(folder: Path, detector: LoadedDetector, report: dict) -> None:
    """save_gated writes its own folder atomically; it goes inside ours, then its files move up."""
    inner = folder / "checkpoint"
    save_gated(inner, detector, calibration={k: v for k, v in report.items() if k != "sweep"})
    for item in inner.iterdir():
        item.rename(folder / item.name)
    inner.rmdir()
