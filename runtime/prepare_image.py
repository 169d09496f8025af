"""Write one image as the raw float32 [1,3,H,W] input of the C++ sample (runtime/cpp), DETR-style.

    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw [--shortest-edge 800] [--longest-edge 1333]
    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw --size 512x512

The same preprocessing as gsmlp.model.processing (which needs torch; this needs numpy and pillow only): RGB,
bilinear resize so that the shorter side is --shortest-edge unless the longer one would exceed
--longest-edge, [0, 1] scaling, ImageNet mean/std, then zero padding at the bottom/right up to a multiple of
--pad-multiple (the valid region is what pixel_mask marks). --size HxW resizes to exactly HxW, unpadded, for
an engine built for one size. The file is the bare array, C order, little-endian. The sizes are printed as
the sample's command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsmlp.errors import GsmlpError
from gsmlp.io import write_bytes_atomic
from gsmlp.model.resize import IMAGENET_MEAN, IMAGENET_STD, resized_size

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)


def preprocess(image_path: Path, size: tuple[int, int], pad_multiple: int = 1) -> np.ndarray:
    """float32 [1, 3, H', W']: normalized, zero-padded at the bottom/right to multiples of `pad_multiple`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_path) as image:
            rgb = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise GsmlpError(f"cannot read the image {image_path}: {exc}") from None
    pixels = (np.asarray(rgb, dtype=np.float32) / 255.0 - MEAN) / STD
    padded_h = -(-size[0] // pad_multiple) * pad_multiple
    padded_w = -(-size[1] // pad_multiple) * pad_multiple
    out = np.zeros((1, 3, padded_h, padded_w), dtype="<f4")
    out[0, :, : size[0], : size[1]] = pixels.transpose(2, 0, 1)
    return out


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
    parser.add_argument("--pad-multiple", type=int, default=64, help="pad H and W up to multiples of it (64)")
    parser.add_argument("--size", help="exact HxW instead, unpadded (for an engine built for one fixed size)")
    args = parser.parse_args(argv)
    try:
        from PIL import Image

        try:
            with Image.open(args.image) as image:
                width, height = image.size
        except OSError as exc:
            raise GsmlpError(f"cannot read the image {args.image}: {exc}") from None
        if args.size:
            size, pad = _parse_size(args.size), 1
        else:
            if args.shortest_edge < 1 or args.longest_edge < args.shortest_edge or args.pad_multiple < 1:
                raise GsmlpError("need 1 <= --shortest-edge <= --longest-edge and --pad-multiple >= 1")
            size, pad = resized_size(height, width, args.shortest_edge, args.longest_edge), args.pad_multiple
        array = preprocess(args.image, size, pad)
        write_bytes_atomic(args.out, array.tobytes())
    except GsmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out}: float32 {list(array.shape)}, "
        f"image {width}x{height} resized to {size[1]}x{size[0]}"
    )
    print(
        f"run: gsmlp_trt_sample --plugin LIB --engine ENGINE --input {args.out} "
        f"--height {array.shape[2]} --width {array.shape[3]} "
        f"--valid-height {size[0]} --valid-width {size[1]} "
        f"--image-height {height} --image-width {width}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
