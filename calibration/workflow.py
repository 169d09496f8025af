"""The calibration workflow (`gsmlp calibrate`, and the demo's first step): load, collect statistics,
calibrate, evaluate, sweep, write. It takes a CalibrationJob; the command line only fills one in."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from gsmlp.calibration.analysis import analyze, write_analysis
from gsmlp.calibration.choices import DEFAULT_SWEEP
from gsmlp.calibration.images import image_batches, model_inputs
from gsmlp.calibration.options import CalibrationJob, CalibrationOptions
from gsmlp.calibration.pipeline import calibrate_model, refit_thresholds, set_thresholds
from gsmlp.calibration.report import heldout_estimate, write_report
from gsmlp.calibration.statistics import NoCalibrationImages, StatisticsCollector, save_statistics
from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory
from gsmlp.model.checkpoint import GSMLP_META, save_gated
from gsmlp.model.detector import LoadedDetector
from gsmlp.model.loaders import load_detector
from gsmlp.model.wrap import gated_layers, set_mode
from gsmlp.paths import folder_output

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


def calibrate(job: CalibrationJob) -> str:
    """Run the job; returns what was written ("analysis" or "checkpoint") into job.out."""
    check_job(job)
    options = None if job.analyze_only else job.method
    values = sweep_values(job)
    detector = _load(job)
    if detector.gated is not None:
        raise GsmlpError(f"--model {job.model} is already a gated checkpoint; calibrate the dense model")
    # The data stage is imported on use, so that `gsmlp --help` never depends on it.
    from gsmlp.data.coco import resolve_dataset

    calibration_set = resolve_dataset(job.data, job.images)
    eval_set = resolve_dataset(job.eval_data, job.eval_images) if job.eval_data else None
    timings: dict[str, float] = {}
    with atomic_directory(job.out, CALIBRATE_OUTPUT, force=job.force) as folder:
        collector, stats = _collect(detector, calibration_set, job, timings)
        save_statistics(stats, folder, collector.images)
        source = {"model": job.model, "data": job.data, "images": collector.images}
        write_analysis(analyze(stats, collector.images, source), stats, folder)
        if options is None:
            return "analysis"
        dense_eval = _timed(timings, "eval_dense_s", lambda: _evaluate(detector, eval_set, job, "dense"))
        start = time.perf_counter()
        results = calibrate_model(detector.model, stats, options)
        timings["calibrate_s"] = time.perf_counter() - start
        if options.uses_gates:
            start = time.perf_counter()
            batches = functools.partial(_calibration_batches, detector, calibration_set, job)
            total = calibration_set.count(job.limit)
            refit_thresholds(detector.model, batches, total, results, options, job.reservoir)
            timings["threshold_refit_s"] = time.perf_counter() - start
        gated_eval = _timed(timings, "eval_gated_s", lambda: _evaluate(detector, eval_set, job, "gated"))
        sweep = _sweep(detector, stats, results, eval_set, values, job) if eval_set else []
        report = _report(job, detector, collector, stats, results, dense_eval, gated_eval, sweep, timings)
        write_report(report, folder)
        _save_checkpoint(folder, detector, report)
    return "checkpoint"


def _collect(detector: LoadedDetector, dataset, job: CalibrationJob, timings):
    set_mode(detector.model, "dense")
    collector = StatisticsCollector(detector.model, reservoir_size=job.reservoir, seed=job.method.seed)
    start = time.perf_counter()
    try:
        stats = collector.run(_calibration_batches(detector, dataset, job), total=dataset.count(job.limit))
    except NoCalibrationImages:
        raise dataset.usable_images_error(job.limit) from None
    timings["statistics_s"] = time.perf_counter() - start
    return collector, stats


def _calibration_batches(detector: LoadedDetector, dataset, job: CalibrationJob):
    # One image per batch: padded positions would add tokens that no real image has to the statistics.
    return (model_inputs(batch) for _, batch in image_batches(dataset, detector.preprocess, 1, job.limit))


def _timed(timings: dict, key: str, work):
    start = time.perf_counter()
    result = work()
    timings[key] = time.perf_counter() - start
    return result


def _evaluate(detector: LoadedDetector, dataset, job: CalibrationJob, label: str) -> dict | None:
    if dataset is None:
        return None
    from gsmlp.calibration.evaluation import evaluate

    return evaluate(detector, dataset, limit=job.eval_limit, label=label)


def _sweep(detector, stats, results, eval_set, values, job: CalibrationJob) -> list[dict]:
    """AP and measured sparsity at each sweep value; the model's own thresholds are restored after."""
    points = []
    for value in values:
        if job.method.method == "sibs":
            # A fresh load, not a deepcopy: the padding fix's hooks share state with the model they were
            # installed on, so a deep-copied detector computes with the original's pixel mask.
            probe = _load(job)
            calibrate_model(probe.model, stats, CalibrationOptions(method="sibs", epsilon=value))
        else:
            set_thresholds(detector.model, results, value)
            probe = detector
        measured = _evaluate(probe, eval_set, job, f"sweep {value}")
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
