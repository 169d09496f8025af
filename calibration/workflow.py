"""The `gsmlp calibrate` workflow: load, collect statistics, calibrate, evaluate, sweep, write."""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from gsmlp.args import load_model_from_args
from gsmlp.calibration.analysis import analyze, write_analysis
from gsmlp.calibration.choices import DEFAULT_SWEEP
from gsmlp.calibration.images import image_batches, model_inputs
from gsmlp.calibration.pipeline import (
    CalibrationOptions,
    calibrate_model,
    refit_thresholds,
    set_thresholds,
)
from gsmlp.calibration.report import heldout_estimate, write_report
from gsmlp.calibration.statistics import NoCalibrationImages, StatisticsCollector, save_statistics
from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory
from gsmlp.model.checkpoint import GSMLP_META, save_gated
from gsmlp.model.detector import LoadedDetector
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


def options_from_args(args: argparse.Namespace) -> CalibrationOptions:
    target_sparsity = args.target_sparsity
    if target_sparsity is None and args.target_recall is None:
        target_sparsity = 0.9
    options = CalibrationOptions(
        method=args.method,
        epsilon=args.epsilon,
        block_size=args.block_size,
        rank=args.rank,
        ordering=args.ordering,
        labels=args.labels,
        target_sparsity=target_sparsity,
        target_recall=args.target_recall,
        gate_steps=args.gate_steps,
        gate_layers=args.gate_layers,
        threshold_passes=args.threshold_passes,
        seed=args.seed,
    )
    options.validate()
    return options


def sweep_values(args: argparse.Namespace) -> list[float]:
    """--sweep as numbers, each a valid target sparsity (MGS) or epsilon (SIBS)."""
    sibs = args.method == "sibs"
    text = args.sweep if args.sweep is not None else DEFAULT_SWEEP["sibs" if sibs else "mgs"]
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GsmlpError(f"--sweep {text!r}: give comma-separated numbers such as 0.5,0.8,0.9") from None
    high = "1)" if sibs else "1]"
    bad = [v for v in values if not (0.0 <= v < 1.0 if sibs else 0.0 <= v <= 1.0)]  # NaN fails both
    if bad:
        raise GsmlpError(f"--sweep {text!r}: {bad[0]} is outside [0, {high}")
    return values


def calibrate_from_args(args: argparse.Namespace) -> int:
    options = None if args.analyze_only else options_from_args(args)
    values = sweep_values(args)
    detector = load_model_from_args(args)
    if detector.gated is not None:
        raise GsmlpError(f"--model {args.model} is already a gated checkpoint; calibrate the dense model")
    # The data stage is imported on use, so that `gsmlp --help` never depends on it.
    from gsmlp.data.coco import resolve_dataset

    calibration_set = resolve_dataset(args.data, args.images)
    eval_set = resolve_dataset(args.eval_data, args.eval_images) if args.eval_data else None
    timings: dict[str, float] = {}
    with atomic_directory(args.out, CALIBRATE_OUTPUT, force=getattr(args, "force", False)) as folder:
        collector, stats = _collect(detector, calibration_set, args, timings)
        save_statistics(stats, folder, collector.images)
        source = {"model": args.model, "data": args.data, "images": collector.images}
        write_analysis(analyze(stats, collector.images, source), stats, folder)
        if options is None:
            print(f"wrote the activation analysis to {args.out}")
            return 0
        dense_eval = _timed(timings, "eval_dense_s", lambda: _evaluate(detector, eval_set, args, "dense"))
        start = time.perf_counter()
        results = calibrate_model(detector.model, stats, options)
        timings["calibrate_s"] = time.perf_counter() - start
        if options.uses_gates:
            start = time.perf_counter()
            batches = functools.partial(_calibration_batches, detector, calibration_set, args)
            total = calibration_set.count(args.max_images)
            refit_thresholds(detector.model, batches, total, results, options, args.reservoir)
            timings["threshold_refit_s"] = time.perf_counter() - start
        gated_eval = _timed(timings, "eval_gated_s", lambda: _evaluate(detector, eval_set, args, "gated"))
        sweep = _sweep(detector, stats, results, options, eval_set, values, args) if eval_set else []
        report = _report(
            args, options, detector, collector, stats, results, dense_eval, gated_eval, sweep, timings
        )
        write_report(report, folder)
        _save_checkpoint(folder, detector, report)
    print(f"wrote the gated checkpoint and calibration report to {args.out}")
    return 0


def _collect(detector: LoadedDetector, dataset, args, timings):
    set_mode(detector.model, "dense")
    collector = StatisticsCollector(detector.model, reservoir_size=args.reservoir, seed=args.seed)
    # One image per batch: padded positions would add tokens that no real image has to the statistics.
    batches = (
        model_inputs(batch) for _, batch in image_batches(dataset, detector.preprocess, 1, args.max_images)
    )
    start = time.perf_counter()
    try:
        stats = collector.run(batches, total=dataset.count(args.max_images))
    except NoCalibrationImages:
        raise dataset.usable_images_error(args.max_images) from None
    timings["statistics_s"] = time.perf_counter() - start
    return collector, stats


def _calibration_batches(detector: LoadedDetector, dataset, args):
    # One image per batch: padded positions would add tokens that no real image has to the statistics.
    return (
        model_inputs(batch) for _, batch in image_batches(dataset, detector.preprocess, 1, args.max_images)
    )


def _timed(timings: dict, key: str, work):
    start = time.perf_counter()
    result = work()
    timings[key] = time.perf_counter() - start
    return result


def _evaluate(detector: LoadedDetector, dataset, args, label: str) -> dict | None:
    if dataset is None:
        return None
    from gsmlp.calibration.evaluation import evaluate

    return evaluate(detector, dataset, limit=args.eval_max_images, label=label)


def _sweep(detector, stats, results, options, eval_set, values, args) -> list[dict]:
    """AP and measured sparsity at each sweep value; the model's own thresholds are restored after."""
    points = []
    for value in values:
        if options.method == "sibs":
            # A fresh load, not a deepcopy: the padding fix's hooks share state with the model they were
            # installed on, so a deep-copied detector computes with the original's pixel mask.
            probe = load_model_from_args(args)
            calibrate_model(probe.model, stats, CalibrationOptions(method="sibs", epsilon=value))
        else:
            set_thresholds(detector.model, results, value)
            probe = detector
        measured = _evaluate(probe, eval_set, args, f"sweep {value}")
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
    args, options, detector, collector, stats, results, dense_eval, gated_eval, sweep, timings
) -> dict:
    if gated_eval is not None:
        sparsity, macs = gated_eval["sparsity"], gated_eval["macs"]
        measured_on = f"{args.eval_data}, {gated_eval['images']} images"
    else:
        estimate = heldout_estimate(results, {name: s.tokens for name, s in stats.items()})
        sparsity, macs = estimate, estimate
        measured_on = "held-out calibration tokens (no --eval-data)"
    return {
        "model": args.model,
        "family": detector.family,
        "method": options.method,
        "options": {k: v for k, v in vars(options).items()},
        "calibration_data": {"data": args.data, "images": collector.images},
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
