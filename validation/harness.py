"""Run the same preprocessed batches through every backend and compare each with the reference.

The report format written here (session.build_report adds the run's context: model, family, onnx, dtype,
images, skipped_images, missing_images, reference; per backend implementation, ffn_sparsity, ffn_macs):
    backends: {name: {status: ok|skipped|failed, reason, metrics, latency_ms: {median, p90, batches}}}
    parity:   {name: {delta_AP, pass, precision, max_abs_diff, max_abs_diff_unpinned, max_rel_diff,
                      max_scaled_diff, metrics_delta, outputs, detection_agreement, gate_decisions,
                      tolerance}}
              precision: the error against PyTorch fp64 judged by PyTorch's own (gsmlp.validation.precision),
              which decides the numeric part of `pass`; the max_*_diff keys compare with PyTorch fp32 and
              are reported, not judged
    pass:     at least one non-reference backend ran, every one that ran passed, and none failed
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from gsmlp.distributed import ONE_PROCESS, Group
from gsmlp.model.processing import nonfinite_outputs
from gsmlp.validation.backend_names import REFERENCE
from gsmlp.validation.backends import OUTPUTS, Backend
from gsmlp.validation.gate_decisions import split_block_masks
from gsmlp.validation.parity import DIFFERENCE_KEYS, detection_agreement, output_differences
from gsmlp.validation.precision import (
    OutputErrors,
    PrecisionErrors,
    PrecisionReference,
    covered_batches,
    judge,
)
from gsmlp.validation.tolerances import DEFAULT_REFERENCE_IMAGES, Tolerance

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


Packed = dict[str, tuple[np.ndarray, tuple[int, ...]]]  # module path -> (packed bits, mask shape)


@dataclass
class BackendRun:
    status: str = "ok"
    reason: str = ""
    outputs: list[Outputs] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    pinned: PinnedParity | None = None
    # Per batch, the gate decisions the backend reported ({} where none), as packed bits (1/8 of their bool
    # size) until the checks after every timed run.
    decisions: list[Packed] = field(default_factory=list)
    precision: PrecisionErrors | None = None

    def failed(self, reason: str) -> None:
        self.status, self.reason = "failed", reason
        self.outputs, self.pinned, self.decisions, self.precision = [], None, [], None


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


def run_backend(backend: Backend, batches: Sequence[InputBatch], progress: bool = True) -> BackendRun:
    """Every batch through one backend, timed; a crash marks it failed with the error, never stops the run.

    The gate decisions the backend returns are kept for the checks (run_checks), which come after every
    timed run: run between them, the reference's threads (torch's OpenMP team spins after its work) would
    take the cores from the next timed batch.
    """
    run = BackendRun()
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
        run.decisions.append({path: _pack(mask) for path, mask in gate_decisions.items()})
    return run


def _pack(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    return np.packbits(np.asarray(mask, dtype=bool)), mask.shape


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.unpackbits(packed, count=int(np.prod(shape))).astype(bool).reshape(shape)


def run_checks(
    runs: Mapping[str, BackendRun],
    reference: BackendRun,
    batches: Sequence[InputBatch],
    pin: Pinner | None,
    precision: PrecisionReference | None,
    covered: set[int],
    progress: bool = True,
) -> None:
    """After the timed runs, per batch and backend: PyTorch fp32 pinned to the backend's gate decisions
    (where it reported them), and on the covered batches the fp64 reference and PyTorch's floor under the
    same decisions. A check that crashes fails its backend with the reason."""
    checked = {name: run for name, run in runs.items() if run is not reference and run.status == "ok"}
    bar = tqdm(batches, desc="checks", unit="batch", disable=not progress or not checked, leave=False)
    for index, batch in enumerate(bar):
        shared: tuple[Outputs, Outputs] | None = None  # fp64 and floor without decisions: one per batch
        for run in checked.values():
            if run.status != "ok":
                continue
            try:
                decisions = {path: _unpack(*bits) for path, bits in run.decisions[index].items()}
                fp32 = reference.outputs[index]
                if decisions and pin is not None:
                    fp32, counts = pin(batch.pixel_values, batch.pixel_mask, decisions)
                    run.pinned = run.pinned or PinnedParity()
                    run.pinned.add(fp32, run.outputs[index], counts)
                if precision is None or index not in covered:
                    continue
                if decisions and pin is not None:
                    fp64, floor = precision.outputs(batch.pixel_values, batch.pixel_mask, decisions, fp32)
                else:
                    shared = shared or precision.outputs(batch.pixel_values, batch.pixel_mask, None, fp32)
                    fp64, floor = shared
            except Exception as exc:
                run.failed(f"checking it against PyTorch on batch {index + 1}: {type(exc).__name__}: {exc}")
                continue
            run.precision = run.precision or PrecisionErrors()
            run.precision.add(fp64, run.outputs[index], floor, _real_images(batch))


def _real_images(batch: InputBatch) -> int:
    # Rows that only pad a static batch are no images: the context says how many are real where it knows.
    return int(getattr(batch.context, "real", len(batch.pixel_values)))


def _fail_on_shape_mismatch(run: BackendRun, reference: BackendRun, reference_name: str) -> None:
    """A backend whose outputs are not shaped like the reference's computes another model: it fails, with
    the output and both shapes named, and the others still report."""
    if run is reference or run.status != "ok":
        return
    for index, (ref, out) in enumerate(zip(reference.outputs, run.outputs, strict=True)):
        for name in OUTPUTS:
            if name in ref and name in out and ref[name].shape != out[name].shape:
                run.failed(
                    f"output {name} of batch {index + 1} has shape {list(out[name].shape)}, "
                    f"{reference_name}'s {list(ref[name].shape)}: the file computes another model "
                    "(exported from another one?)"
                )
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


def _metrics_delta(ref_metrics: dict | None, metrics: dict | None) -> tuple[float | None, dict | None]:
    """(delta AP, every COCO metric's delta): a backend can keep AP and still lose small objects or recall."""
    if not ref_metrics or not metrics:
        return None, None
    delta_ap = metrics["AP"] - ref_metrics["AP"] if "AP" in ref_metrics and "AP" in metrics else None
    deltas = {
        key: metrics[key] - value
        for key, value in ref_metrics.items()
        if isinstance(value, int | float) and isinstance(metrics.get(key), int | float)
    }
    return delta_ap, deltas


def _parity_entry(
    reference: BackendRun,
    other: BackendRun,
    metrics: tuple[dict | None, dict | None],
    family: str,
    tolerance: Tolerance,
    dtype: str,
) -> dict:
    details = _merged_parity(reference.outputs, other.outputs, family)
    unpinned_abs = max((d["max_abs_diff"] for d in details["outputs"].values()), default=0.0)
    # With the gate decisions pinned, the differences measure the computation alone; the flips are
    # judged separately (gsmlp.validation.gate_decisions).
    compared = other.pinned.outputs if other.pinned else details["outputs"]
    worst = {key: max((d[key] for d in compared.values()), default=0.0) for key in DIFFERENCE_KEYS}
    gates = other.pinned.as_dict() if other.pinned else None
    delta_ap, metrics_delta = _metrics_delta(*metrics)
    precision = judge(other.precision or PrecisionErrors(), dtype, tolerance)
    passed = (
        precision["pass"]
        and (delta_ap is None or abs(delta_ap) <= tolerance.delta_ap)
        and (gates is None or gates["flip_rate"] <= tolerance.max_gate_flip_rate)
    )
    return {
        "delta_AP": delta_ap,
        **worst,
        "pass": bool(passed),
        "precision": precision,
        "max_abs_diff_unpinned": unpinned_abs,
        "metrics_delta": metrics_delta,
        **details,
        "gate_decisions": gates,
        "tolerance": tolerance.as_dict(),
    }


def _precision_reference(
    backends: Mapping[str, Backend | str], reference: str, dtype: str
) -> PrecisionReference | None:
    model = getattr(backends.get(reference), "model", None)
    return PrecisionReference(model, dtype) if model is not None else None


def _merge_ranks(gathered: list[tuple[dict[str, BackendRun], list[InputBatch]]]):
    """All ranks' runs as one process's: batches in rank order, a failure on any rank fails the backend."""
    if len(gathered) == 1:
        return gathered[0]
    batches = [batch for _, part in gathered for batch in part]
    merged: dict[str, BackendRun] = {}
    for name in gathered[0][0]:
        parts = [runs[name] for runs, _ in gathered]
        bad = next(((rank, run) for rank, run in enumerate(parts) if run.status != "ok"), None)
        if bad is not None:
            rank, run = bad
            reason = run.reason if run.status == "skipped" else f"on rank {rank}: {run.reason}"
            merged[name] = BackendRun(run.status, reason)
            continue
        whole = BackendRun()
        for run in parts:
            whole.outputs += run.outputs
            whole.seconds += run.seconds
            if run.pinned is not None:
                whole.pinned = whole.pinned or PinnedParity()
                _merge_differences(whole.pinned.outputs, run.pinned.outputs)
                whole.pinned.decisions += run.pinned.decisions
                whole.pinned.flipped += run.pinned.flipped
            if run.precision is not None:
                whole.precision = whole.precision or PrecisionErrors()
                whole.precision.images += run.precision.images
                for output, errors in run.precision.outputs.items():
                    entry = whole.precision.outputs.setdefault(output, OutputErrors())
                    entry.backend.parts += errors.backend.parts
                    entry.floor.parts += errors.floor.parts
        merged[name] = whole
    return merged, batches


def _rank_latency(seconds: list[list[float]] | None, group: Group) -> dict:
    """Under torchrun: each rank's batch latency and the whole run's images per second (ranks in parallel)."""
    if not group.distributed or seconds is None:
        return {}
    return {
        "latency_ms_per_rank": [_latency_ms(part) for part in seconds],
        "busy_s_per_rank": [round(float(sum(part)), 4) for part in seconds],
    }


def validate_backends(
    backends: dict[str, Backend | str],
    batches: Iterable[InputBatch],
    *,
    family: str,
    tolerance: Tolerance | Mapping[str, Tolerance],
    reference: str = REFERENCE,
    evaluate: Evaluator | None = None,
    progress: bool = True,
    pin: Pinner | None = None,
    dtype: str = "fp32",
    reference_images: int | None = DEFAULT_REFERENCE_IMAGES,
    evaluate_for: Callable[[list[InputBatch]], Evaluator] | None = None,
    group: Group = ONE_PROCESS,
) -> dict | None:
    """A backend given as a string instead of an object is `skipped`, the string being the reason.

    tolerance: one for every backend, or one per backend name (as a tolerance file sets them).
    pin: re-runs the reference under another backend's gate decisions (gated models; see run_checks).
    dtype: the ONNX file's; it decides PyTorch's floor (gsmlp.validation.precision).
    reference_images: how many images the fp64 reference covers (None: all).
    evaluate_for: makes the evaluator for a list of batches (all ranks' batches under torchrun).
    group: under torchrun, `batches` are this rank's contiguous share of whole batches; every rank runs
    them through every backend and checks them, rank 0 merges the runs and returns the report (the other
    ranks return None). The batches are those of one process, so the report is one process's.
    """
    batches = list(batches)
    progress = progress and group.is_main
    runs: dict[str, BackendRun] = {}
    for name, backend in backends.items():
        runs[name] = (
            BackendRun("skipped", backend)
            if isinstance(backend, str)
            else run_backend(backend, batches, progress)
        )
    ref_run = runs.get(reference)
    all_images = group.all_gather([_real_images(b) for b in batches])
    first_batch = sum(len(part) for part in all_images[: group.rank])
    if ref_run is not None and ref_run.status == "ok":
        for run in runs.values():
            _fail_on_shape_mismatch(run, ref_run, reference)
        if any(run is not ref_run and run.status == "ok" for run in runs.values()):
            every = covered_batches([n for part in all_images for n in part], reference_images)
            covered = {index - first_batch for index in every if 0 <= index - first_batch < len(batches)}
            precision = _precision_reference(backends, reference, dtype)
            run_checks(runs, ref_run, batches, pin, precision, covered, progress)
    for run in runs.values():
        run.decisions = []  # the checks are done: rank 0 needs the outputs, not the packed decisions
    per_rank_seconds = {name: group.gather(run.seconds) for name, run in runs.items()}
    gathered = group.gather((runs, batches))
    if gathered is None:
        return None
    runs, batches = _merge_ranks(gathered)
    ref_run = runs.get(reference)
    if evaluate_for is not None:
        evaluate = evaluate_for(batches)
    report: dict = {"reference": reference, "images": int(sum(len(b.pixel_values) for b in batches))}
    metrics = {
        name: evaluate(run.outputs) if evaluate and run.status == "ok" else None for name, run in runs.items()
    }
    report["backends"] = {
        name: {
            "status": run.status,
            "reason": run.reason,
            "metrics": metrics[name],
            "latency_ms": _latency_ms(run.seconds),
            **_rank_latency(per_rank_seconds[name], group),
        }
        for name, run in runs.items()
    }
    report["parity"] = {}
    report["pass"] = False
    if ref_run is None or ref_run.status != "ok":
        why = ref_run.reason if ref_run else "not among the backends"
        report["reason"] = f"the reference backend {reference!r} did not run: {why}"
        return report
    report["parity"] = {
        name: _parity_entry(
            ref_run,
            run,
            (metrics[reference], metrics[name]),
            family,
            tolerance if isinstance(tolerance, Tolerance) else tolerance[name],
            dtype,
        )
        for name, run in runs.items()
        if name != reference and run.status == "ok"
    }
    failed = [name for name, run in runs.items() if run.status == "failed"]
    if not report["parity"] and not failed:
        # Every other backend was skipped: nothing was compared, so nothing passed.
        report["reason"] = "no backend besides the reference ran, so nothing was compared"
        return report
    report["pass"] = not failed and all(entry["pass"] for entry in report["parity"].values())
    return report
