"""Fit preprocessed batches to what an ONNX file accepts: a static export has one batch and image size."""

from __future__ import annotations

import numpy as np
import onnx

from gsmlp.errors import GsmlpError
from gsmlp.model.resize import MAX_BATCH, MAX_EDGE


def input_shape(
    model: onnx.ModelProto, name: str = "pixel_values", source: str = "the ONNX file"
) -> tuple[int | None, ...]:
    """The declared shape of an input; None for a dynamic dimension. pixel_values is checked to be
    [batch, 3, height, width] within the bounds of every batch and image (MAX_BATCH, MAX_EDGE), before
    anything is allocated for it."""
    for value in model.graph.input:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
            if name == "pixel_values":
                _check_image_shape(shape, source, name)
            return shape
    raise GsmlpError(
        f"{source} has no input {name!r}: it is empty or was not written by gsmlp export "
        "(whose files take pixel_values and pixel_mask)"
    )


def _check_image_shape(shape: tuple[int | None, ...], source: str, name: str) -> None:
    if len(shape) != 4:
        raise GsmlpError(
            f"{source}: input {name} has {len(shape)} dimensions; gsmlp's files take [B, 3, H, W]"
        )
    bounds = {0: ("batch", MAX_BATCH), 2: ("height", MAX_EDGE), 3: ("width", MAX_EDGE)}
    for axis, (what, bound) in bounds.items():
        size = shape[axis]
        if size is not None and not 1 <= size <= bound:
            raise GsmlpError(
                f"{source}: input {name} declares {what} {size} (dimension {axis}); it must lie in "
                f"1..{bound}: the file is damaged, or not one gsmlp export wrote"
            )
    if shape[1] is not None and shape[1] != 3:
        raise GsmlpError(f"{source}: input {name} declares {shape[1]} channels; gsmlp's files take 3")


def fit_batch(
    pixel_values: np.ndarray, pixel_mask: np.ndarray, shape: tuple[int | None, ...], source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pad images (bottom/right, mask 0) and the batch (repeating the last image) to a static shape.

    Returns the padded arrays and how many leading images are real. Padding is exact because pixel_mask
    tells the model which pixels are real, the same way preprocessing pads a mixed-size batch.
    """
    batch, _, height, width = pixel_values.shape
    want_batch, _, want_height, want_width = shape
    want_height, want_width = want_height or height, want_width or width
    if height > want_height or width > want_width:
        raise GsmlpError(
            f"{source} was exported for {want_height}x{want_width} images, but a preprocessed batch is "
            f"{height}x{width}: export at a larger --height/--width, or with --dynamic (DETR)"
        )
    padded_values = np.zeros((batch, 3, want_height, want_width), dtype=np.float32)
    padded_mask = np.zeros((batch, want_height, want_width), dtype=np.int64)
    padded_values[:, :, :height, :width] = pixel_values
    padded_mask[:, :height, :width] = pixel_mask
    if want_batch is None or want_batch == batch:
        return padded_values, padded_mask, batch
    if batch > want_batch:
        raise GsmlpError(
            f"{source} was exported for batch {want_batch}; use --batch-size {want_batch} or less"
        )
    repeat = np.repeat(np.arange(batch)[-1:], want_batch - batch)
    order = np.concatenate([np.arange(batch), repeat])
    return padded_values[order], padded_mask[order], batch
