"""Run the same preprocessed batches through every backend and compare each with the reference.

The report format written here (session.build_report adds the run's context: model, family, onnx, dtype,
images, skipped_images, missing_images, reference; per backend implementation, ffn_sparsity, ffn_macs):
    backends: {name: {status: ok|skipped|failed, reason, metrics, latency_ms: {median, p90, batches}}}
    parity:   {name: {delta_AP, max_abs_diff, max_abs_diff_unpinned, max_rel_diff, max_scaled_diff, pass,
                      metrics_delta, outputs, detection_agreement, gate_decisions, tolerance}}
              (the max_abs_diff bound applies to max_scaled_diff: gsmlp.validation.parity)
    pass:     every non-reference backend that ran passed, and none failed
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from gsmlp.model.processing import nonfinite_outputs
from gsmlp.validation.backends import OUTPUTS, Backend
from gsmlp.validation.gate_decisions import split_block_masks
from gsmlp.validation.parity import DIFFERENCE_KEYS, detection_agreement, output_differences
from gsmlp.validation.tolerances import Tolerance

Outputs = dict[str, np.ndarray]
# Turns one backend's outputs (one dict per batch) into COCO metrics in points, or None where none apply.
Evaluator = Callable[[list[Outputs]], dict[str, float] | None]
# (pixel_values, pixel_mask, another backend's gate decisions) -> (reference outputs under those decisions,
# {decisions, flipped}); see gsmlp.validation.gate_decisions.PinnedReference.
Pinner = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray]], tuple[Outputs, dict[str, int]]]


@dataclass
class InputBatch:
    pixel_values: np.ndarray  # [B, 3, H, W] float32
    pixel_mask: np.ndarray  # [B, H, W] int64
    context: object = None  # whatever the evaluator needs to post-process this batch (sizes, image ids)


@dataclass
class PinnedParity:
    """Accumulated over the batches: output differences against the pinned reference, and the flips."""

    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    decisions: int = 0
    flipped: int = 0

    def add(self, reference: Outputs, other: Outputs, counts: dict[str, int]) -> None:
        _merge_differences(self.outputs, output_differences(reference, other))
        self.decisions += counts["decisions"]
        self.flipped += counts["flipped"]

    def as_dict(self) -> dict:
        return {
            "pinned": True,
            "decisions": self.decisions,
            "flipped": self.flipped,
            "flip_rate": self.flipped / self.decisions if self.decisions else 0.0,
            "outputs_pinned": self.outputs,
        }


@dataclass
class BackendRun:
    status: str = "ok"
    reason: str = ""
    outputs: list[Outputs] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    pinned: PinnedParity | None = None


def _merge_differences(merged: dict[str, dict[str, float]], differences: dict[str, dict[str, float]]) -> None:
    for name, diff in differences.items():
        entry = merged.setdefault(name, dict.fromkeys(DIFFERENCE_KEYS, 0.0))
        for key in entry:
            entry[key] = max(entry[key], diff[key])


def _latency_ms(seconds: list[float]) -> dict[str, float | int] | None:
    # The first batch pays for lazy initialisation (allocations, kernel selection): not counted when
    # there are others.
    timed = seconds[1:] if len(seconds) > 1 else seconds
    if not timed:
        return None
    ms = np.asarray(timed) * 1000.0
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "batches": len(ms)}


def run_backend(
    backend: Backend, batches: Sequence[InputBatch], progress: bool = True, pin: Pinner | None = None
) -> BackendRun:
    """Every batch through one backend; a crash marks it failed with the error, never stops the run.

    Where the backend returns its gate decisions and `pin` is given, the reference then re-runs each batch
    pinned to them. The pinned runs come after all the timed ones: run between them, the reference's
    threads (torch's OpenMP team spins after its work) would take the cores from the next timed batch.
    Meanwhile the decisions are kept as packed bits (1/8 of their bool size).
    """
    run = BackendRun()
    decisions: list[dict[str, tuple[np.ndarray, tuple[int, ...]]]] = []  # per batch; {} where none
    bar = tqdm(batches, desc=backend.name, unit="batch", disable=not progress, leave=False)
    for index, batch in enumerate(bar):
        start = time.perf_counter()
        try:
            outputs = backend.run(batch.pixel_values, batch.pixel_mask)
        except Exception as exc:  # a backend crash is a result to report, not a reason to stop
            return BackendRun("failed", f"{type(exc).__name__}: {exc}")
        run.seconds.append(time.perf_counter() - start)
        broken = nonfinite_outputs({name: outputs[name] for name in OUTPUTS if name in outputs})
        if broken:
            return BackendRun(
                "failed", f"non-finite outputs on batch {index + 1} of {len(batches)}: {broken}"
            )
        gate_decisions = split_block_masks(outputs)
        run.outputs.append(outputs)
        decisions.append({path: _pack(mask) for path, mask in gate_decisions.items()})
    return _pin_all(run, batches, decisions, pin) if pin is not None and any(decisions) else run


def _pack(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    return np.packbits(np.asarray(mask, dtype=bool)), mask.shape


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.unpackbits(packed, count=int(np.prod(shape))).astype(bool).reshape(shape)


def _pin_all(
    run: BackendRun,
    batches: Sequence[InputBatch],
    decisions: list[dict[str, tuple[np.ndarray, tuple[int, ...]]]],
    pin: Pinner,
) -> BackendRun:
    """The reference re-run on every batch under that batch's decisions, after the timed runs."""
    for batch, outputs, packed in zip(batches, run.outputs, decisions, strict=True):
        if not packed:
            continue
        gate_decisions = {path: _unpack(*bits) for path, bits in packed.items()}
        try:
            reference, counts = pin(batch.pixel_values, batch.pixel_mask, gate_decisions)
        except Exception as exc:
            return BackendRun("failed", f"pinning the reference to its gate decisions: {exc}")
        run.pinned = run.pinned or PinnedParity()
        run.pinned.add(reference, outputs, counts)
    return run


def _fail_on_shape_mismatch(run: BackendRun, reference: BackendRun, reference_name: str) -> None:
    """A backend whose outputs are not shaped like the reference's computes another model: it fails, with
    the output and both shapes named, and the others still report."""
    if run is reference or run.status != "ok":
        return
    for index, (ref, out) in enumerate(zip(reference.outputs, run.outputs, strict=True)):
        for name in OUTPUTS:
            if name in ref and name in out and ref[name].shape != out[name].shape:
                run.status = "failed"
                run.reason = (
                    f"output {name} of batch {index + 1} has shape {list(out[name].shape)}, "
                    f"{reference_name}'s {list(ref[name].shape)}: the file computes another model "
                    "(exported from another one?)"
                )
                run.outputs, run.pinned = [], None
                return


def _merged_parity(reference: list[Outputs], other: list[Outputs], family: str) -> dict:
    per_output: dict[str, dict[str, float]] = {}
    agreements = []
    for ref, out in zip(reference, other, strict=True):
        _merge_differences(per_output, output_differences(ref, out))
        agreements.append(detection_agreement(ref, out, family))
    detections = sum(a["detections"] for a in agreements)
    agreement = {
        "detections": detections,
        "agreement": sum(a["agreement"] * a["detections"] for a in agreements) / max(detections, 1),
        "label_agreement": sum(a["label_agreement"] * a["detections"] for a in agreements)
        / max(detections, 1),
        "min_iou": min((a["min_iou"] for a in agreements), default=1.0),
        "min_iou_required": agreements[0]["min_iou_required"] if agreements else 0.99,
    }
    return {"outputs": per_output, "detection_agreement": agreement}


def _parity_entry(
    reference: BackendRun, other: BackendRun, ref_metrics, metrics, family: str, tolerance: Tolerance
) -> dict:
    details = _merged_parity(reference.outputs, other.outputs, family)
    unpinned_abs = max((d["max_abs_diff"] for d in details["outputs"].values()), default=0.0)
    # With the gate decisions pinned, the differences measure the computation alone; the flips are
    # judged separately (gsmlp.validation.gate_decisions).
    compared = other.pinned.outputs if other.pinned else details["outputs"]
    worst = {key: max((d[key] for d in compared.values()), default=0.0) for key in DIFFERENCE_KEYS}
    gates = other.pinned.as_dict() if other.pinned else None
    delta_ap = None
    if ref_metrics and metrics and "AP" in ref_metrics and "AP" in metrics:
        delta_ap = metrics["AP"] - ref_metrics["AP"]
    # Every COCO metric, not only AP: a backend can keep AP and still lose small objects (APs) or recall.
    metrics_delta = None
    if ref_metrics and metrics:
        metrics_delta = {
            key: metrics[key] - value
            for key, value in ref_metrics.items()
            if isinstance(value, int | float) and isinstance(metrics.get(key), int | float)
        }
    passed = (
        worst["max_scaled_diff"] <= tolerance.max_abs_diff
        and (delta_ap is None or abs(delta_ap) <= tolerance.delta_ap)
        and (gates is None or gates["flip_rate"] <= tolerance.max_gate_flip_rate)
    )
    return {
        "delta_AP": delta_ap,
        **worst,
        "pass": bool(passed),
        "max_abs_diff_unpinned": unpinned_abs,
        "metrics_delta": metrics_delta,
        **details,
        "gate_decisions": gates,
        "tolerance": tolerance.as_dict(),
    }


def validate_backends(
    backends: dict[str, Backend | str],
    batches: Iterable[InputBatch],
    *,
    family: str,
    tolerance: Tolerance | Mapping[str, Tolerance],
    reference: str = "pytorch",
    evaluate: Evaluator | None = None,
    progress: bool = True,
    pin: Pinner | None = None,
) -> dict:
    """A backend given as a string instead of an object is `skipped`, the string being the reason.

    tolerance: one for every backend, or one per backend name (as a tolerance file sets them).
    pin: re-runs the reference under another backend's gate decisions (gated models; see run_backend).
    """
    batches = list(batches)
    runs: dict[str, BackendRun] = {}
    for name, backend in backends.items():
        runs[name] = (
            BackendRun("skipped", backend)
            if isinstance(backend, str)
            else run_backend(backend, batches, progress, pin if name != reference else None)
        )
    ref_run = runs.get(reference)
    if ref_run is not None and ref_run.status == "ok":
        for run in runs.values():
            _fail_on_shape_mismatch(run, ref_run, reference)
    metrics = {
        name: evaluate(run.outputs) if evaluate and run.status == "ok" else None for name, run in runs.items()
    }
    report: dict = {"reference": reference, "images": int(sum(len(b.pixel_values) for b in batches))}
    report["backends"] = {
        name: {
            "status": run.status,
            "reason": run.reason,
            "metrics": metrics[name],
            "latency_ms": _latency_ms(run.seconds),
        }
        for name, run in runs.items()
    }
    if ref_run is None or ref_run.status != "ok":
        why = ref_run.reason if ref_run else "not among the backends"
        report["parity"] = {}
        report["pass"] = False
        report["reason"] = f"the reference backend {reference!r} did not run: {why}"
        return report
    report["parity"] = {
        name: _parity_entry(
            ref_run,
            run,
            metrics[reference],
            metrics[name],
            family,
            tolerance if isinstance(tolerance, Tolerance) else tolerance[name],
        )
        for name, run in runs.items()
        if name != reference and run.status == "ok"
    }
    failed = [name for name, run in runs.items() if run.status == "failed"]
    report["pass"] = not failed and all(entry["pass"] for entry in report["parity"].values())
    return report
