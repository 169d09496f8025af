"""Pre- and post-processing as in the DETR papers: resize, normalise, pad with a mask; boxes to pixels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gsmlp.deploy_metadata import ACTIVATIONS
from gsmlp.errors import GsmlpError
from gsmlp.io import write_json_atomic

# nonfinite_outputs lives with the torch-free decoding; the importers of this module keep finding it here.
from gsmlp.model.decoding import DEFAULT_TOP_K, Detections, decode, nonfinite_outputs  # noqa: F401
from gsmlp.model.pixels import to_rgb8
from gsmlp.model.resize import IMAGENET_MEAN, IMAGENET_STD, MAX_EDGE, resized_size
from gsmlp.paths import read_regular_bytes

FAMILIES = ("detr", "deformable-detr")


@dataclass(frozen=True)
class PreprocessConfig:
    """Resize and normalisation settings, stored as Hugging Face's preprocessor_config.json.

    `pad_multiple`: the padded batch's height and width are rounded up to a multiple of it. With the
    detector's coarsest feature stride (64 for 4-level Deformable DETR), the model's nearest-neighbour
    mask downsampling picks exactly every stride-th mask pixel, which batch invariance needs
    (see model/padding.py).
    """

    shortest_edge: int = 800
    longest_edge: int = 1333
    image_mean: tuple = IMAGENET_MEAN
    image_std: tuple = IMAGENET_STD
    pad_multiple: int = 64

    @classmethod
    def from_json(cls, path: str | Path) -> PreprocessConfig:
        path = Path(path)
        try:
            data = json.loads(read_regular_bytes(path, "preprocessing file"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise GsmlpError(f"{path} is corrupt (truncated, or not valid JSON): {exc}") from None
        if not isinstance(data, dict):
            raise GsmlpError(f"{path} must hold a JSON object, not {type(data).__name__}")
        size = data.get("size", {})
        if not isinstance(size, dict):
            raise GsmlpError(f"{path}: size is {size!r}; it must be an object (shortest_edge, longest_edge)")
        config = cls(
            shortest_edge=_integer(path, "size.shortest_edge", size.get("shortest_edge", cls.shortest_edge)),
            longest_edge=_integer(path, "size.longest_edge", size.get("longest_edge", cls.longest_edge)),
            image_mean=_numbers(path, "image_mean", data.get("image_mean", IMAGENET_MEAN)),
            image_std=_numbers(path, "image_std", data.get("image_std", IMAGENET_STD)),
            pad_multiple=_integer(path, "pad_multiple", data.get("pad_multiple", cls.pad_multiple)),
        )
        config.check(str(path))
        return config

    def check(self, where: str = "preprocessing") -> None:
        if not 0 < self.shortest_edge <= self.longest_edge <= MAX_EDGE:
            raise GsmlpError(
                f"{where}: need 0 < shortest_edge <= longest_edge <= {MAX_EDGE}, "
                f"got {self.shortest_edge}, {self.longest_edge}"
            )
        values = (*self.image_mean, *self.image_std)
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or not np.isfinite(values).all():
            raise GsmlpError(f"{where}: image_mean and image_std need 3 finite values each")
        if min(self.image_std) <= 0:
            raise GsmlpError(f"{where}: image_std must be > 0, got {list(self.image_std)}")
        if not 1 <= self.pad_multiple <= MAX_EDGE:
            raise GsmlpError(
                f"{where}: pad_multiple must be between 1 and {MAX_EDGE}, got {self.pad_multiple}"
            )

    def to_json(self) -> dict:
        return {
            "size": {"shortest_edge": self.shortest_edge, "longest_edge": self.longest_edge},
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "pad_multiple": self.pad_multiple,
        }

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())


def _integer(path: Path, key: str, value: object) -> int:
    """A JSON integer as written: "800", 800.5 or true is refused, never cast."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise GsmlpError(f"{path}: {key} is {value!r}; it must be an integer")
    return value


def _numbers(path: Path, key: str, value: object) -> tuple[float, ...]:
    """A JSON list of numbers as written (the count and finiteness are check()'s)."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise GsmlpError(f"{path}: {key} is {value!r}; it must be a list of 3 numbers")
    return tuple(float(v) for v in value)


@dataclass
class Batch:
    pixel_values: torch.Tensor  # [B, 3, H, W] float32, normalised, zero where padded
    pixel_mask: torch.Tensor  # [B, H, W] int64, 1 = real pixel
    original_sizes: list[tuple[int, int]]  # (h, w) of each input image
    resized_sizes: list[tuple[int, int]]  # (h, w) after resizing, before padding


def _to_tensor(image: Image.Image, size: tuple[int, int], config: PreprocessConfig) -> torch.Tensor:
    rgb = to_rgb8(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(config.image_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(config.image_std, dtype=torch.float32)[:, None, None]
    return (pixels - mean) / std


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def preprocess(images: Sequence[Image.Image], config: PreprocessConfig) -> Batch:
    """Resize, normalise and pad (bottom/right, zeros) a list of images into one batch with its mask."""
    if not images:
        raise GsmlpError("preprocess needs at least one image")
    original = [(image.height, image.width) for image in images]
    resized = [resized_size(h, w, config.shortest_edge, config.longest_edge) for h, w in original]
    height = _round_up(max(h for h, _ in resized), config.pad_multiple)
    width = _round_up(max(w for _, w in resized), config.pad_multiple)
    pixel_values = torch.zeros(len(images), 3, height, width)
    for index, (image, (h, w)) in enumerate(zip(images, resized, strict=True)):
        pixel_values[index, :, :h, :w] = _to_tensor(image, (h, w), config)
    return Batch(pixel_values, pixel_mask_for(resized, (len(images), height, width)), original, resized)


def pixel_mask_for(resized_sizes: Sequence[tuple[int, int]], shape: Sequence[int]) -> torch.Tensor:
    """[B, H, W] int64: 1 over each image's resized area (top left), 0 where the batch pads it."""
    pixel_mask = torch.zeros(tuple(shape), dtype=torch.int64)
    for index, (h, w) in enumerate(resized_sizes):
        pixel_mask[index, :h, :w] = 1
    return pixel_mask


def postprocess(
    logits: torch.Tensor, pred_boxes: torch.Tensor, batch: Batch, family: str, top_k: int = DEFAULT_TOP_K
) -> list[Detections]:
    """Model outputs -> per-image detections in original-image pixels (gsmlp.model.decoding's rule)."""
    if family not in ACTIVATIONS:
        raise GsmlpError(f"unknown model family {family!r}: choose one of {', '.join(FAMILIES)}")
    logits_np = logits.detach().float().cpu().numpy()
    boxes_np = pred_boxes.detach().float().cpu().numpy()
    return [
        decode(logits_np[index], boxes_np[index], ACTIVATIONS[family], size, top_k=top_k)
        for index, size in enumerate(batch.original_sizes)
    ]
