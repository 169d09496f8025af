"""Write one image as the raw float32 [1,3,H,W] input of the C++ sample (runtime/cpp), DETR-style.

    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw [--shortest-edge 800] [--longest-edge 1333]
    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw --size 512x512

The image is converted to RGB, resized (bilinear) so that its shorter side is --shortest-edge without the
longer one exceeding --longest-edge (or to exactly --size HxW), scaled to [0, 1] and normalized with the
ImageNet mean and std, as DETR and Deformable DETR expect. The file is the bare array, C order, little-endian;
H and W are printed, with the sample's command line. Needs numpy and pillow only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsmlp.errors import GsmlpError
from gsmlp.io import write_bytes_atomic

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resized_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """(H, W) with the shorter side `shortest_edge`, shrunk so that the longer side is <= `longest_edge`."""
    scale = shortest_edge / min(height, width)
    if max(height, width) * scale > longest_edge:
        scale = longest_edge / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def preprocess(image_path: Path, size: tuple[int, int]) -> np.ndarray:
    """float32 [1, 3, H, W], normalized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_path) as image:
            rgb = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise GsmlpError(f"cannot read the image {image_path}: {exc}") from None
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    pixels = (pixels - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype="<f4")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GsmlpError(f"--size {text!r}: expected HxW, e.g. 512x512") from None
    if height < 1 or width < 1:
        raise GsmlpError(f"--size {text!r}: height and width must be >= 1")
    return height, width


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gsmlp.runtime.prepare_image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", type=Path, help="any image pillow reads (JPEG, PNG, ...)")
    parser.add_argument("out", type=Path, help="the raw float32 file to write")
    parser.add_argument("--shortest-edge", type=int, default=800, help="target of the shorter side (800)")
    parser.add_argument("--longest-edge", type=int, default=1333, help="bound on the longer side (1333)")
    parser.add_argument("--size", help="exact HxW instead (for an engine built for one fixed size)")
    args = parser.parse_args(argv)
    try:
        if args.size:
            size = _parse_size(args.size)
        else:
            if args.shortest_edge < 1 or args.longest_edge < args.shortest_edge:
                raise GsmlpError("--shortest-edge must be >= 1 and <= --longest-edge")
            from PIL import Image

            try:
                with Image.open(args.image) as image:
                    width, height = image.size
            except OSError as exc:
                raise GsmlpError(f"cannot read the image {args.image}: {exc}") from None
            size = resized_size(height, width, args.shortest_edge, args.longest_edge)
        array = preprocess(args.image, size)
        write_bytes_atomic(args.out, array.tobytes())
    except GsmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    height, width = size
    print(f"wrote {args.out}: float32 [1,3,{height},{width}]")
    print(
        f"run: gsmlp_trt_sample --plugin LIB --engine ENGINE --input {args.out} "
        f"--height {height} --width {width}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
