"""Running a detector over a dataset, and COCO box metrics through pycocotools (quiet, with the
empty-result crash kept from the user)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from pycocotools.cocoeval import COCOeval

from gsmlp.data.coco import CocoDataset
from gsmlp.errors import GsmlpError

if TYPE_CHECKING:
    from gsmlp.model.detector import LoadedDetector
    from gsmlp.model.processing import Batch, Detections, PreprocessConfig

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0:6], in this order


def detections_to_results(dataset: CocoDataset, detections: dict[int, Detections]) -> tuple[list[dict], int]:
    """COCO result records (xywh boxes) for the dataset's categories; and how many were of other labels."""
    known = set(dataset.category_ids)
    results, foreign = [], 0
    for image_id, found in detections.items():
        boxes = np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4)
        for (x0, y0, x1, y1), score, label in zip(boxes, found.scores, found.labels, strict=True):
            if int(label) not in known:
                foreign += 1
                continue
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "score": float(score),
                }
            )
    return results, foreign


def coco_metrics(dataset: CocoDataset, detections: dict[int, Detections]) -> dict:
    """AP, AP50, AP75, APs, APm, APl in points (0-100) over the images in `detections`, plus `notes`.

    Only the images that were evaluated count: skipped (missing or unreadable) ones are not misses.
    """
    notes: list[str] = []
    results, foreign = detections_to_results(dataset, detections)
    if foreign:
        notes.append(f"{foreign} detections had labels that are not category ids of {dataset.name}; ignored")
    if not detections:
        notes.append("no image was evaluated, so every metric is 0")
        return {**dict.fromkeys(METRIC_NAMES, 0.0), "notes": notes}
    if not results:
        # pycocotools' loadRes fails on an empty list (IndexError); no detection means 0 AP anyway.
        notes.append("the model made no detection of a known category on any image, so every metric is 0")
        return {**dict.fromkeys(METRIC_NAMES, 0.0), "notes": notes}
    with contextlib.redirect_stdout(io.StringIO()):
        predictions = dataset.coco.loadRes(results)
        evaluator = COCOeval(dataset.coco, predictions, iouType="bbox")
        evaluator.params.imgIds = sorted(detections)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval reports -1 where a size range has no ground truth; that is "not measured", shown as 0.
    metrics = {
        name: max(0.0, float(value) * 100)
        for name, value in zip(METRIC_NAMES, evaluator.stats[:6], strict=True)
    }
    return {**metrics, "notes": notes}


def format_metrics(metrics: dict, title: str = "COCO box metrics") -> str:
    """A small aligned table of the six metrics, in points."""
    header = "  ".join(f"{name:>6}" for name in METRIC_NAMES)
    values = "  ".join(f"{metrics[name]:6.2f}" for name in METRIC_NAMES)
    return f"{title} (points, 0-100)\n{header}\n{values}"


def detect(
    detector: LoadedDetector,
    dataset: CocoDataset,
    batch_size: int,
    limit: int | None,
    desc: str = "evaluating",
    progress_bar: bool = True,
    batches: Callable[..., Iterator[tuple[tuple[int, ...], Batch]]] | None = None,
) -> tuple[dict[int, Detections], float]:
    """Run the detector over the dataset: ({image_id: Detections}, seconds spent in the model itself).

    batches: what yields (image ids, preprocessed batch) for (dataset, batch_size, limit, preprocess
    config); default: the dataset's images, preprocessed (the sweep's cache serves recorded ones)."""
    import torch
    from tqdm import tqdm

    from gsmlp.model.placement import model_device, to_device
    from gsmlp.model.processing import nonfinite_outputs, postprocess

    device = model_device(detector.model)
    detections, model_seconds = {}, 0.0
    bar = tqdm(total=dataset.count(limit), desc=desc, unit="img", disable=not progress_bar)
    source = (batches or preprocessed_batches)(dataset, batch_size, limit, detector.preprocess)
    with bar as progress, torch.no_grad():
        for ids, batch in source:
            started = time.perf_counter()
            inputs = to_device({"pixel_values": batch.pixel_values, "pixel_mask": batch.pixel_mask}, device)
            outputs = detector.model(**inputs)
            # On the CPU for scoring; the copy also waits for a GPU's queued work, so the time is its own.
            logits, boxes = outputs.logits.cpu(), outputs.pred_boxes.cpu()
            model_seconds += time.perf_counter() - started
            broken = nonfinite_outputs({"logits": logits, "pred_boxes": boxes})
            if broken:
                names = ", ".join(dataset.image_path(image_id).name for image_id in ids)
                raise GsmlpError(
                    f"{detector.source} produced non-finite outputs on {names}: {broken}; nothing was "
                    "scored (are the weights or the preprocessing settings broken?)"
                )
            found = postprocess(logits, boxes, batch, detector.family)
            detections.update(zip(ids, found, strict=True))
            progress.update(len(ids))
    return detections, model_seconds


def preprocessed_batches(
    dataset: CocoDataset, batch_size: int, limit: int | None, config: PreprocessConfig
) -> Iterator[tuple[tuple[int, ...], Batch]]:
    """(image ids, preprocessed batch) over `dataset.batches(batch_size, limit)`."""
    from gsmlp.model.processing import preprocess

    for items in dataset.batches(batch_size, limit):
        yield tuple(image_id for image_id, _ in items), preprocess([image for _, image in items], config)
