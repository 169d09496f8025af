"""DETR-style decoding of one image's outputs into detections, with numpy only.

The one home of the rule, shared by PyTorch evaluation (gsmlp.model.processing.postprocess) and the
torch-free runtimes (`gsmlp detect`); the C++ samples implement the same rule (runtime/cpp/detections.cpp)
and tests hold them to this one:

- softmax (DETR): softmax over all classes, the last being "no object"; each query's best real class
  is its label and that probability its score;
- sigmoid (Deformable DETR): every (query, class) pair is a candidate, scored by its sigmoid;
- the `top_k` best candidates are kept, highest score first (ties: lower query, then lower class first),
  then those below `score_threshold` are dropped;
- boxes are (cx, cy, w, h) relative to the resized, unpadded image, which is the original image scaled:
  times the original size they are original pixels (x0, y0, x1, y1).

Everything is computed in float32, as the C++ samples compute it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gsmlp.errors import GsmlpError

DEFAULT_TOP_K = 100  # as DETR's and Deformable DETR's COCO evaluation


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] xyxy in original-image pixels
    scores: np.ndarray  # [N]
    labels: np.ndarray  # [N] int: the dataset's own category ids
    queries: np.ndarray | None = None  # [N] the decoder query each came from


def candidate_scores(logits: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate of one image: (scores, labels, queries), in (query, class) order."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise GsmlpError(
            f"decoding takes one image's logits [queries, classes], got shape {list(logits.shape)}"
        )
    queries, classes = logits.shape
    if activation == "softmax":
        if classes < 2:
            raise GsmlpError(
                f"softmax decoding needs a 'no object' class and one more; logits have {classes}"
            )
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        real = probabilities[:, :-1]
        labels = real.argmax(axis=1)
        return real[np.arange(queries), labels], labels, np.arange(queries)
    if activation == "sigmoid":
        scores = (np.float32(1) / (np.float32(1) + np.exp(-logits))).reshape(-1)
        index = np.arange(queries * classes)
        return scores, index % classes, index // classes
    raise GsmlpError(f"unknown output activation {activation!r}: choose softmax or sigmoid")


def decode(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    activation: str,
    image_size: tuple[int, int],
    *,
    top_k: int = DEFAULT_TOP_K,
    score_threshold: float = 0.0,
) -> Detections:
    """One image's logits [Q, C] and pred_boxes [Q, 4] -> its detections; image_size: original (h, w)."""
    scores, labels, queries = candidate_scores(logits, activation)
    # A stable sort of the negated scores: equal scores keep (query, class) order, as the C++ samples do.
    order = np.argsort(-scores, kind="stable")[:top_k]
    order = order[scores[order] >= np.float32(score_threshold)]
    boxes = np.asarray(pred_boxes, dtype=np.float32)[queries[order]]
    height, width = image_size
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    half_w, half_h = np.float32(0.5) * w, np.float32(0.5) * h
    scale = np.array([width, height, width, height], dtype=np.float32)
    xyxy = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1) * scale
    return Detections(xyxy.astype(np.float32), scores[order], labels[order].astype(np.int64), queries[order])


def nonfinite_outputs(outputs: Mapping[str, Any]) -> str | None:
    """'logits: 1200 of 1200 values are NaN or infinite', one clause per output holding any; else None.

    Outputs are numpy arrays or torch tensors. A detector whose outputs are not finite scores nothing that
    means anything: the run must fail, and say which output went wrong, rather than report AP 0.
    """
    found = []
    for name, value in outputs.items():
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating):
            continue
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            nan = int(np.count_nonzero(np.isnan(array)))
            found.append(f"{name}: {bad} of {array.size} values are NaN or infinite ({nan} NaN)")
    return "; ".join(found) or None
