"""Any image pillow decodes -> 8-bit RGB, the range the models take; without torch (prepare_image uses it).

pillow's own convert("RGB") clips images of more than 8 bits per sample at 255: a 16-bit PNG turns almost
white and a float TIFF in [0, 1] black. Here they are scaled instead: 16-bit samples by 255/65535, 32-bit
integers and floats by the range their values declare (a float image in [0, 1], as scikit-image and OpenCV
write them, [0, 255] or [0, 65535]; 32-bit integers in [0, 255], [0, 65535] or [0, 2^32 - 1]). Samples
outside every such range (negative, not finite) make the image unusable: callers skip it, naming why.
(16-bit RGB and RGBA PNGs reach pillow as 8-bit RGB, already scaled.)
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from gsmlp.paths import open_regular

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# The full scale a sample range may declare, smallest first: each value is the white of its range.
FLOAT_RANGES = (1.0, 255.0, 65535.0)
INTEGER_RANGES = (255.0, 65535.0, 4294967295.0)


class UnusableImage(ValueError):
    """An image whose samples lie outside every range gsmlp knows how to scale; the message says which."""


def _full_scale(values: np.ndarray, ranges: tuple[float, ...], kind: str) -> float:
    if not np.isfinite(values).all():
        raise UnusableImage(f"its {kind} samples are not all finite (NaN or infinity)")
    low, high = float(values.min()), float(values.max())
    for full in ranges:
        if low >= 0 and high <= full:
            return full
    shown = ", ".join(f"[0, {r:g}]" for r in ranges)
    raise UnusableImage(
        f"its {kind} samples span [{low:g}, {high:g}], outside every range gsmlp scales ({shown})"
    )


def to_rgb8(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB, high bit depths scaled to 0-255 rather than clipped (see the module)."""
    if image.mode in SIXTEEN_BIT_MODES:
        values, full = np.asarray(image, dtype=np.float64), 65535.0
    elif image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        full = _full_scale(values, INTEGER_RANGES, "32-bit integer")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        full = _full_scale(values, FLOAT_RANGES, "floating-point")
    else:
        return image.convert("RGB")
    gray = np.rint(values * (255.0 / full)).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")  # uint8, two dimensions: mode L


def read_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Decode one image file into 8-bit RGB, reading it once; a FIFO or device is refused, never waited on.

    Raises whatever stops the image from being used (GsmlpError, UnusableImage, pillow's many errors):
    callers skip the image and name it with the message.
    """
    with open_regular(path, "image") as file, Image.open(file) as image:
        return to_rgb8(image)
