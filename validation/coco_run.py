"""COCO images -> the harness's input batches, and backend outputs -> COCO metrics (points 0-100).

Preprocessing happens once, here, so every backend receives the very same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from gsmlp.validation.harness import Evaluator, InputBatch, Outputs
from gsmlp.validation.inputs import fit_batch


@dataclass
class BatchContext:
    image_ids: list[int]
    batch: object  # gsmlp.model.processing.Batch: the sizes postprocess needs
    real: int  # leading rows that are real images (the rest pad a static batch)


def coco_batches(
    dataset,
    limit: int | None,
    preprocess_config,
    batch_size: int,
    onnx_shape: tuple[int | None, ...] | None,
    source: str,
) -> list[InputBatch]:
    """Preprocess the dataset's images (the first `limit`) in batches, padded to the ONNX static shape."""
    from gsmlp.model.processing import preprocess

    batches = []
    total = len(dataset) if limit is None else min(limit, len(dataset))
    progress = tqdm(total=total, desc="preprocess", unit="image", leave=False)
    for chunk in dataset.batches(batch_size, limit):
        progress.update(len(chunk))
        ids = [image_id for image_id, _ in chunk]
        batch = preprocess([image for _, image in chunk], preprocess_config)
        values, mask = batch.pixel_values.numpy(), batch.pixel_mask.numpy()
        real = len(ids)
        if onnx_shape is not None:
            values, mask, real = fit_batch(values, mask, onnx_shape, source)
        batches.append(InputBatch(values, mask, BatchContext(ids, batch, real)))
    progress.close()
    return batches


def coco_evaluator(dataset, batches: Sequence[InputBatch], family: str) -> Evaluator:
    """An evaluator for `validate_backends`: postprocess each batch, then pycocotools via coco_metrics."""
    from gsmlp.data.evaluate import coco_metrics
    from gsmlp.model.processing import postprocess

    def evaluate(outputs: list[Outputs]) -> dict[str, float]:
        detections = {}
        for batch, out in zip(batches, outputs, strict=True):
            context: BatchContext = batch.context
            logits = torch.from_numpy(out["logits"][: context.real])
            boxes = torch.from_numpy(out["pred_boxes"][: context.real])
            for image_id, found in zip(
                context.image_ids, postprocess(logits, boxes, context.batch, family), strict=True
            ):
                detections[image_id] = found
        return coco_metrics(dataset, detections)

    return evaluate
