"""The parity criterion: each backend's error against an fp64 run of the PyTorch model, judged by the error
PyTorch itself makes in the file's dtype (its floor).

A fixed bound on the largest difference cannot hold: the maximum over more images only grows, for a correct
backend as much as for PyTorch itself. What stays put is how a backend's error compares with the error any
correct implementation of the same dtype makes. So, on the images it covers, the check runs the model in
float64 (with the backend's own gate decisions pinned, where it reports them) and measures, per output:

- the backend's error:  |backend - fp64| / max(|fp64|, 1)   (absolute up to magnitude 1, relative beyond)
- PyTorch's floor:      the same for PyTorch in the file's dtype (fp32; for fp16 files, torch.autocast fp16),
                        under the same decisions

and a backend passes when a high quantile and the maximum of its error are each within a factor of the
floor's (Tolerance.quantile_factor, max_factor), both raised to `floor_ulps` units in the last place of the
dtype so that exact zeros do not divide. The quantile is judged only where enough elements lie beyond it
(QUANTILE_TAIL); on fewer it is the maximum, which its own factor judges. docs/VALIDATION.md gives the
measurements behind the defaults.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gsmlp.validation.gate_decisions import gated_modules, meters_paused, pinned
from gsmlp.validation.parity import SCALED_FLOOR
from gsmlp.validation.tolerances import QUANTILE_TAIL, Tolerance

Outputs = dict[str, np.ndarray]
# The spacing of the dtype's numbers just above 1: the scaled errors' unit for floor_ulps.
ULP = {"fp32": float(np.finfo(np.float32).eps), "fp16": float(np.finfo(np.float16).eps)}
# The PyTorch computation whose error is the floor, per file dtype (named in the report).
FLOOR_NAMES = {"fp32": "pytorch fp32", "fp16": "pytorch fp16 (torch.autocast)"}
REFERENCE_NAME = "pytorch fp64"


def scaled_errors(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|other - reference| / max(|reference|, 1), flat, in float64; NaN on one side only counts as inf."""
    ref, out = reference.astype(np.float64).ravel(), other.astype(np.float64).ravel()
    error = np.abs(out - ref) / np.maximum(np.abs(ref), SCALED_FLOOR)
    both_nan = np.isnan(ref) & np.isnan(out)
    return np.where(both_nan, 0.0, np.nan_to_num(error, nan=np.inf))


@dataclass
class ErrorSample:
    """Every scaled error of one output over the covered images (float32 is plenty for a ratio)."""

    parts: list[np.ndarray] = field(default_factory=list)

    def add(self, errors: np.ndarray) -> None:
        self.parts.append(errors.astype(np.float32))

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


@dataclass
class OutputErrors:
    """One output of one backend: its errors against fp64, and PyTorch's under the same decisions."""

    backend: ErrorSample = field(default_factory=ErrorSample)
    floor: ErrorSample = field(default_factory=ErrorSample)


@dataclass
class PrecisionErrors:
    """Accumulated over the covered batches, per output."""

    outputs: dict[str, OutputErrors] = field(default_factory=dict)
    images: int = 0

    def add(self, reference: Outputs, backend: Outputs, floor: Outputs, images: int) -> None:
        for name, ref in reference.items():
            if name not in backend or name not in floor:
                continue
            entry = self.outputs.setdefault(name, OutputErrors())
            entry.backend.add(scaled_errors(ref, backend[name]))
            entry.floor.add(scaled_errors(ref, floor[name]))
        self.images += images


def _statistic(values: np.ndarray, quantile: float) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    return float(np.quantile(values, quantile, method="higher")), float(values.max())


def quantile_judged(elements: int, quantile: float) -> bool:
    """Whether `elements` values hold enough beyond `quantile` for it to be judged (QUANTILE_TAIL)."""
    return elements * (1.0 - quantile) >= QUANTILE_TAIL


def judge(errors: PrecisionErrors, dtype: str, tolerance: Tolerance) -> dict:
    """The report's `precision` entry: per output the backend's error, PyTorch's floor, their ratios, and
    whether both ratios are within the tolerance's factors."""
    unit = tolerance.floor_ulps * ULP[dtype]
    outputs = {}
    for name, entry in errors.outputs.items():
        error_q, error_max = _statistic(entry.backend.values(), tolerance.quantile)
        floor_q, floor_max = _statistic(entry.floor.values(), tolerance.quantile)
        ratio_q = max(error_q, unit) / max(floor_q, unit)
        ratio_max = max(error_max, unit) / max(floor_max, unit)
        elements = int(entry.backend.values().size)
        judged = quantile_judged(elements, tolerance.quantile)
        outputs[name] = {
            "elements": elements,
            "error_quantile": error_q,
            "error_max": error_max,
            "floor_quantile": floor_q,
            "floor_max": floor_max,
            "ratio_quantile": ratio_q,
            "ratio_max": ratio_max,
            "quantile_judged": judged,
            "pass": bool(
                (not judged or ratio_q <= tolerance.quantile_factor) and ratio_max <= tolerance.max_factor
            ),
        }
    return {
        "reference": REFERENCE_NAME,
        "floor": FLOOR_NAMES[dtype],
        "images": errors.images,
        "quantile": tolerance.quantile,
        "floor_unit": unit,
        "outputs": outputs,
        # No covered image means nothing was measured: that is not a pass.
        "pass": bool(outputs) and all(entry["pass"] for entry in outputs.values()),
    }


def covered_batches(batch_images: Sequence[int], images: int | None) -> set[int]:
    """Indices of the batches the reference runs on: all of them where their images fit in `images` (None:
    no bound), else batches spread evenly over the set until `images` images are covered."""
    total = sum(batch_images)
    if images is None or total <= images:
        return set(range(len(batch_images)))
    count = max(1, round(len(batch_images) * images / total))
    chosen = np.unique(np.linspace(0, len(batch_images) - 1, count).round().astype(int))
    return {int(index) for index in chosen}


def _run(model: nn.Module, pixel_values: np.ndarray, pixel_mask: np.ndarray, dtype: torch.dtype) -> Outputs:
    with torch.no_grad():
        outputs = model(
            pixel_values=torch.from_numpy(pixel_values).to(dtype), pixel_mask=torch.from_numpy(pixel_mask)
        )
    return {"logits": outputs.logits.double().numpy(), "pred_boxes": outputs.pred_boxes.double().numpy()}


@contextlib.contextmanager
def _pinned_to(model: nn.Module, decisions: dict[str, np.ndarray] | None) -> Iterator[None]:
    """The decisions pinned where given; the sparsity meters paused either way (a check, not the run)."""
    if not decisions:
        with meters_paused(model):
            yield
        return
    layers = gated_modules(model, sorted(decisions))
    with pinned(model, layers, {path: torch.from_numpy(decisions[path]) for path in layers}):
        yield


class PrecisionReference:
    """The PyTorch model in float64 (a copy; the kernels' op falls back to the reference body there), and the
    floor's computation for the file's dtype."""

    def __init__(self, model: nn.Module, dtype: str) -> None:
        if dtype not in FLOOR_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}: the precision check knows {', '.join(FLOOR_NAMES)}")
        self.model = model
        self.dtype = dtype
        self.model64 = copy.deepcopy(model).double().eval()

    def outputs(
        self,
        pixel_values: np.ndarray,
        pixel_mask: np.ndarray,
        decisions: dict[str, np.ndarray] | None,
        fp32_outputs: Outputs,
    ) -> tuple[Outputs, Outputs]:
        """(fp64 outputs, floor outputs) for one batch, both under `decisions` where given.

        fp32_outputs: PyTorch fp32's outputs under the same decisions, which are the floor of an fp32 file.
        """
        with _pinned_to(self.model64, decisions):
            reference = _run(self.model64, pixel_values, pixel_mask, torch.float64)
        if self.dtype == "fp32":
            return reference, fp32_outputs
        # fp16: PyTorch's own mixed precision (matmuls and convolutions in fp16; normalisations, softmax
        # and the residual stream in fp32), the way a PyTorch user runs a model in fp16.
        with _pinned_to(self.model, decisions), torch.autocast("cpu", dtype=torch.float16):
            return reference, _run(self.model, pixel_values, pixel_mask, torch.float32)
