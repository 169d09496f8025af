"""Parity metrics of one backend against the reference: output differences and detection agreement."""

from __future__ import annotations

import numpy as np

# Below this magnitude a relative difference says nothing; it is measured against max(|ref|, floor).
RELATIVE_FLOOR = 1e-3
# The difference that the max_abs_diff bound judges: absolute where |ref| <= 1 (boxes, probabilities, small
# logits), relative beyond. fp32 summation-order differences grow with the magnitude: a trained detr-small's
# dense file differed from PyTorch by 1.9e-4 on a logit of about -16 (relative 1.2e-5), identical detections.
SCALED_FLOOR = 1.0
# What output_differences reports per output, each the largest over its elements.
DIFFERENCE_KEYS = ("max_abs_diff", "max_rel_diff", "max_scaled_diff")


def output_differences(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per output: max abs, max relative and max scaled difference, |out - ref| / max(|ref|, 1) (NaN in
    either side counts as infinite)."""
    result = {}
    for name, ref in reference.items():
        if name not in other:
            continue
        ref64, out64 = ref.astype(np.float64), other[name].astype(np.float64)
        if ref64.shape != out64.shape:
            raise ValueError(f"output {name}: shape {out64.shape} differs from the reference {ref64.shape}")
        diff = np.abs(ref64 - out64)
        diff = np.where(np.isnan(ref64) & np.isnan(out64), 0.0, np.nan_to_num(diff, nan=np.inf))
        relative = diff / np.maximum(np.abs(ref64), RELATIVE_FLOOR)
        scaled = diff / np.maximum(np.abs(ref64), SCALED_FLOOR)
        result[name] = {
            "max_abs_diff": float(diff.max(initial=0.0)),
            "max_rel_diff": float(relative.max(initial=0.0)),
            "max_scaled_diff": float(scaled.max(initial=0.0)),
        }
    return result


def query_scores(logits: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (best score, its label). DETR: softmax without the no-object class; Deformable: sigmoid."""
    if family == "detr":
        shifted = logits - logits.max(-1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        probs = probs[..., :-1]
    else:
        probs = 1.0 / (1.0 + np.exp(-logits))
    return probs.max(-1), probs.argmax(-1)


def _cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    cx, cy, w, h = np.moveaxis(boxes, -1, 0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of paired cxcywh boxes [..., 4]; two empty boxes at one place count as identical."""
    a, b = _cxcywh_to_xyxy(a.astype(np.float64)), _cxcywh_to_xyxy(b.astype(np.float64))
    low, high = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(high - low, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), -1)  # noqa: E731
    union = area(a) + area(b) - inter
    same = np.all(np.isclose(a, b, atol=1e-7), -1)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), same.astype(np.float64))


def detection_agreement(
    reference: dict[str, np.ndarray],
    other: dict[str, np.ndarray],
    family: str,
    top_k: int = 100,
    min_iou: float = 0.99,
) -> dict[str, float | int]:
    """The reference's top-k queries per image, matched to the same query of the other backend.

    A query agrees when both give it the same label and their boxes overlap with IoU >= min_iou.
    """
    ref_scores, ref_labels = query_scores(reference["logits"], family)
    _, other_labels = query_scores(other["logits"], family)
    k = min(top_k, ref_scores.shape[1])
    top = np.argsort(-ref_scores, axis=1, kind="stable")[:, :k]
    take = lambda array: np.take_along_axis(array, top, axis=1)  # noqa: E731
    same_label = take(ref_labels) == take(other_labels)
    iou = box_iou(
        np.take_along_axis(reference["pred_boxes"], top[..., None], axis=1),
        np.take_along_axis(other["pred_boxes"], top[..., None], axis=1),
    )
    agree = same_label & (iou >= min_iou)
    return {
        "detections": int(agree.size),
        "agreement": float(agree.mean()) if agree.size else 1.0,
        "label_agreement": float(same_label.mean()) if agree.size else 1.0,
        "min_iou": float(iou.min()) if iou.size else 1.0,
        "top_k": int(k),
        "min_iou_required": min_iou,
    }
