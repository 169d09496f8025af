"""Default parity tolerances per dtype. fp16 figures come from the measurements in docs/EXPORT.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tolerance:
    delta_ap: float  # |AP(backend) - AP(reference)|, COCO points 0-100
    max_abs_diff: float  # over every output element (logits and pred_boxes)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TOLERANCES = {
    "fp32": Tolerance(delta_ap=0.1, max_abs_diff=1e-4),
    # fp16: measured on full-size DETR-R50 / Deformable-DETR-R50 (random weights, real COCO images) and the
    # tiny models; see docs/EXPORT.md "fp16 cost" for the figures behind these bounds.
    "fp16": Tolerance(delta_ap=0.5, max_abs_diff=5e-2),
}


def tolerance_for(dtype: str) -> Tolerance:
    return DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES["fp32"])
