"""Batch invariance: an image gives the same detections alone as inside a padded batch of other sizes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DetrForObjectDetection

from gsmlp.model.configs import detr_r50_config
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.processing import Detections, PreprocessConfig, postprocess, preprocess
from tests.conftest import make_tiny_model

SMALL = PreprocessConfig(shortest_edge=224, longest_edge=384)
TOLERANCE = 1e-4


def varied_images(root: Path, count: int = 4) -> list[Image.Image]:
    """The tallest, the widest and the median-aspect images, then the first: several sizes and shapes."""
    images = [Image.open(path) for path in sorted((root / "val2017").glob("*.jpg"))]
    by_aspect = sorted(images, key=lambda image: image.width / image.height)
    chosen = [by_aspect[0], by_aspect[-1], by_aspect[len(by_aspect) // 2], images[0]]
    return [image.convert("RGB") for image in chosen[:count]]


def detect(model: torch.nn.Module, images: list[Image.Image], family: str, config: PreprocessConfig):
    batch = preprocess(images, config)
    with torch.no_grad():
        out = model(pixel_values=batch.pixel_values, pixel_mask=batch.pixel_mask)
    return postprocess(out.logits, out.pred_boxes, batch, family)


def max_difference(a: Detections, b: Detections, size: tuple[int, int]) -> float:
    """Scores, and boxes relative to the image size (a pixel tolerance would depend on the image)."""
    if not np.array_equal(a.labels, b.labels):
        return float("inf")
    scale = np.array([size[1], size[0], size[1], size[0]], dtype=np.float32)
    return float(max(np.abs(a.scores - b.scores).max(), np.abs((a.boxes - b.boxes) / scale).max()))


def batch_vs_single(model: torch.nn.Module, images: list[Image.Image], family: str, config: PreprocessConfig):
    together = detect(model, images, family, config)
    worst = 0.0
    for image, in_batch in zip(images, together, strict=True):
        (alone,) = detect(model, [image], family, config)
        worst = max(worst, max_difference(alone, in_batch, (image.height, image.width)))
    return worst


def test_batch_gives_the_same_detections_as_each_image_alone(coco_subset: Path, family: str) -> None:
    images = varied_images(coco_subset)
    assert len({image.size for image in images}) == len(images)
    model = make_padding_invariant(make_tiny_model(family))
    assert batch_vs_single(model, images, family, SMALL) <= TOLERANCE


def test_stock_deformable_detr_is_not_batch_invariant(coco_subset: Path) -> None:
    """The fix is needed: without it, padding changes the detections far beyond the tolerance."""
    images = varied_images(coco_subset, count=2)
    assert (
        batch_vs_single(make_tiny_model("deformable-detr"), images, "deformable-detr", SMALL)
        > 100 * TOLERANCE
    )


def test_without_padding_the_fix_changes_nothing(family: str) -> None:
    stock = make_tiny_model(family)
    fixed = make_padding_invariant(copy.deepcopy(stock))
    pixels = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = stock(pixel_values=pixels)
        actual = fixed(pixel_values=pixels, pixel_mask=torch.ones(2, 96, 160, dtype=torch.int64))
    assert torch.equal(expected.logits, actual.logits)
    assert torch.equal(expected.pred_boxes, actual.pred_boxes)


def test_a_deep_copy_is_batch_invariant_on_its_own(coco_subset: Path, family: str) -> None:
    original = make_padding_invariant(make_tiny_model(family))
    duplicate = copy.deepcopy(original)
    del original  # the copy must not depend on the original's hook state
    assert batch_vs_single(duplicate, varied_images(coco_subset), family, SMALL) <= TOLERANCE


def test_fix_keeps_every_weight_name(family: str) -> None:
    stock = make_tiny_model(family)
    fixed = make_padding_invariant(copy.deepcopy(stock))
    assert list(fixed.state_dict()) == list(stock.state_dict())


@pytest.mark.slow
def test_full_size_detr_r50_is_batch_invariant(coco_subset: Path) -> None:
    torch.manual_seed(0)
    model = make_padding_invariant(DetrForObjectDetection(detr_r50_config()).eval())
    config = PreprocessConfig(shortest_edge=480, longest_edge=800)
    assert batch_vs_single(model, varied_images(coco_subset, count=3), "detr", config) <= TOLERANCE
