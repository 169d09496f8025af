"""Write one image as the raw float32 [1,3,H,W] input of the C++ sample (runtime/cpp), DETR-style.

    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw [--shortest-edge 800] [--longest-edge 1333]
    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw --size 512x512

The same preprocessing as gsmlp.model.processing (which needs torch; this needs numpy and pillow only): RGB
(16-bit and float images scaled to 8 bits, gsmlp.model.pixels),
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

from gsmlp import locks, watch
from gsmlp.errors import GsmlpError
from gsmlp.io import OutputKind, write_bytes_atomic
from gsmlp.model.pixels import read_rgb, to_rgb8
from gsmlp.model.resize import IMAGENET_MEAN, IMAGENET_STD, MAX_EDGE, resized_size
from gsmlp.paths import OutputPlan, require_file

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)


def read_image(image_path: Path):
    """The image as 8-bit RGB (gsmlp.model.pixels: high bit depths scaled), read once; any reason it cannot
    be used is a GsmlpError naming the file."""
    try:
        return read_rgb(image_path)
    except GsmlpError:
        raise
    except Exception as exc:  # pillow raises many types for damaged files (and a decompression bomb)
        raise GsmlpError(f"cannot read the image {image_path}: {exc}") from None


def preprocess(image, size: tuple[int, int], pad_multiple: int = 1) -> np.ndarray:
    """float32 [1, 3, H', W']: normalized, zero-padded at the bottom/right to multiples of `pad_multiple`.

    image: a PIL image (read_image) or the path of one."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = read_image(Path(image))
    rgb = to_rgb8(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = (np.asarray(rgb, dtype=np.float32) / 255.0 - MEAN) / STD
    padded_h = -(-size[0] // pad_multiple) * pad_multiple
    padded_w = -(-size[1] // pad_multiple) * pad_multiple
    out = np.zeros((1, 3, padded_h, padded_w), dtype="<f4")
    out[0, :, : size[0], : size[1]] = pixels.transpose(2, 0, 1)
    return out


# What this tool writes: a raw float32 [1, 3, H, W] array; an existing file of that shape's size (a whole
# number of 3-channel float32 pixels) is taken to be an earlier one.
RAW_OUTPUT = OutputKind(
    "a raw float32 image written by prepare_image", lambda p: p.is_file() and p.stat().st_size % 12 == 0
)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GsmlpError(f"--size {text!r}: expected HxW, e.g. 512x512") from None
    if not (1 <= height <= MAX_EDGE and 1 <= width <= MAX_EDGE):
        raise GsmlpError(f"--size {text!r}: height and width must lie in 1..{MAX_EDGE}")
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
    parser.add_argument("--force", action="store_true", help="replace an OUT that is not an earlier one")
    args = parser.parse_args(argv)
    try:
        if args.size:
            size_given = _parse_size(args.size)
        elif args.shortest_edge < 1 or args.longest_edge < args.shortest_edge or args.pad_multiple < 1:
            raise GsmlpError("need 1 <= --shortest-edge <= --longest-edge and --pad-multiple >= 1")
        elif args.longest_edge > MAX_EDGE:
            raise GsmlpError(f"--longest-edge must be at most {MAX_EDGE}, got {args.longest_edge}")
        require_file(args.image, "IMAGE")
        plan = OutputPlan(force=args.force)
        plan.file(args.out, "OUT", RAW_OUTPUT)
        plan.check({"IMAGE": args.image})
        image = read_image(args.image)
        width, height = image.size
        if args.size:
            size, pad = size_given, 1
        else:
            size, pad = resized_size(height, width, args.shortest_edge, args.longest_edge), args.pad_multiple
        array = preprocess(image, size, pad)
        write_bytes_atomic(args.out, array.tobytes())
    except GsmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        locks.release_all()
        watch.forget()
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
