"""Model-input batches from a COCO dataset, for statistics and evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from gsmlp.model.processing import Batch, PreprocessConfig, preprocess

if TYPE_CHECKING:  # the data stage is needed only where a dataset is actually read
    from gsmlp.data.coco import CocoDataset


def image_batches(
    dataset: CocoDataset, config: PreprocessConfig, batch_size: int, limit: int | None = None
) -> Iterator[tuple[list[int], Batch]]:
    """(image ids, preprocessed batch), in the dataset's id order, at most `limit` images."""
    ids, images = [], []
    for image_id, image in dataset.iterate(limit):
        ids.append(image_id)
        images.append(image)
        if len(images) == batch_size:
            yield ids, preprocess(images, config)
            ids, images = [], []
    if images:
        yield ids, preprocess(images, config)


def model_inputs(batch: Batch) -> dict[str, torch.Tensor]:
    return {"pixel_values": batch.pixel_values, "pixel_mask": batch.pixel_mask}


def count_images(dataset: CocoDataset, limit: int | None) -> int:
    return len(dataset) if limit is None else min(limit, len(dataset))
