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
    image_ids: Sequence[int],
    preprocess_config,
    batch_size: int,
    onnx_shape: tuple[int | None, ...] | None,
    source: str,
) -> list[InputBatch]:
    """Preprocess `image_ids` in batches of `batch_size`, padded to the ONNX file's static shape."""
    from gsmlp.model.processing import preprocess

    batches = []
    chunks = [list(image_ids[i : i + batch_size]) for i in range(0, len(image_ids), batch_size)]
    for ids in tqdm(chunks, desc="preprocess", unit="batch", leave=False):
        batch = preprocess([dataset.load_image(image_id) for image_id in ids], preprocess_config)
        values, mask = batch.pixel_values.numpy(), batch.pixel_mask.numpy()
        real = len(ids)
        if onnx_shape is not None:
            values, mask, real = fit_batch(values, mask, onnx_shape, source)
        batches.append(InputBatch(values, mask, BatchContext(ids, batch, real)))
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
