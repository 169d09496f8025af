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
    for items in dataset.batches(batch_size, limit):
        yield [image_id for image_id, _ in items], preprocess([image for _, image in items], config)


def model_inputs(batch: Batch) -> dict[str, torch.Tensor]:
    return {"pixel_values": batch.pixel_values, "pixel_mask": batch.pixel_mask}
