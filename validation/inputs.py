"""Fit preprocessed batches to what an ONNX file accepts: a static export has one batch and image size."""

from __future__ import annotations

import numpy as np
import onnx

from gsmlp.errors import GsmlpError


def input_shape(
    model: onnx.ModelProto, name: str = "pixel_values", source: str = "the ONNX file"
) -> tuple[int | None, ...]:
    """The declared shape of an input; None for a dynamic dimension."""
    for value in model.graph.input:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    raise GsmlpError(
        f"{source} has no input {name!r}: it is empty or was not written by gsmlp export "
        "(whose files take pixel_values and pixel_mask)"
    )


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
