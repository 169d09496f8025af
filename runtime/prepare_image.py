"""Pre-process images as a gsmlp detector wants them, with numpy and pillow; write the C++ samples' input.

    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw --model runs/gated.onnx    # the file's own settings
    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw [--shortest-edge 800] [--longest-edge 1333]
    python -m gsmlp.runtime.prepare_image IMAGE OUT.raw --size 512x512

The same preprocessing as gsmlp.model.processing (which needs torch): RGB (16-bit and float images scaled
to 8 bits, gsmlp.model.pixels), bilinear resize so that the
shorter side is --shortest-edge unless the longer one would exceed --longest-edge, [0, 1] scaling, mean/std
normalisation, then zero padding at the bottom/right up to a multiple of --pad-multiple (the valid region
is what pixel_mask marks). With --model (an ONNX file of `gsmlp export` or an engine of `gsmlp build`) the
resize rule, its sizes, mean, std and padding multiple come from the file's metadata, and a file exported
for one fixed size gets its input padded to that size. --size HxW resizes to exactly HxW, unpadded. The
file is the bare float32 [1,3,H,W] array, C order, little-endian. The sizes are printed as the command line
of the C++ sample that runs the file (gsmlp_ort_sample for ONNX, gsmlp_trt_sample for an engine).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gsmlp import locks, watch
from gsmlp.errors import GsmlpError
from gsmlp.io import OutputKind, write_bytes_atomic
from gsmlp.model.pixels import read_rgb, to_rgb8
from gsmlp.model.resize import IMAGENET_MEAN, IMAGENET_STD, MAX_EDGE, resized_size
from gsmlp.paths import OutputPlan, require_file

if TYPE_CHECKING:
    from PIL.Image import Image

    from gsmlp.deploy_metadata import DeployMetadata

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)


def open_rgb(image_path: Path) -> Image:
    """The image as 8-bit RGB (gsmlp.model.pixels: high bit depths scaled), read once; any reason it cannot
    be used is a GsmlpError naming the file."""
    try:
        return read_rgb(image_path)
    except GsmlpError:
        raise
    except Exception as exc:  # pillow raises many types for damaged files (and a decompression bomb)
        raise GsmlpError(f"cannot read the image {image_path}: {type(exc).__name__}: {exc}") from None


def preprocess(
    image: Path | Image,
    size: tuple[int, int],
    pad_multiple: int = 1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    canvas: tuple[int, int] | None = None,
) -> np.ndarray:
    """float32 [1, 3, H', W']: resized to `size` (h, w), normalized, zero-padded at the bottom/right to
    multiples of `pad_multiple`, or to `canvas` (h, w) where given."""
    from PIL import Image as PILImage

    rgb = open_rgb(Path(image)) if isinstance(image, str | Path) else to_rgb8(image)
    resized = rgb.resize((size[1], size[0]), PILImage.Resampling.BILINEAR)
    mean_array, std_array = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - mean_array) / std_array
    if canvas is None:
        canvas = (-(-size[0] // pad_multiple) * pad_multiple, -(-size[1] // pad_multiple) * pad_multiple)
    out = np.zeros((1, 3, *canvas), dtype="<f4")
    out[0, :, : size[0], : size[1]] = pixels.transpose(2, 0, 1)
    return out


@dataclass
class PreparedImage:
    """One image as a deployed detector takes it."""

    pixel_values: np.ndarray  # [1, 3, H, W] float32
    pixel_mask: np.ndarray  # [1, H, W] int64: 1 on the resized image, 0 on the padding
    original_size: tuple[int, int]  # (h, w) of the image: boxes are decoded into its pixels
    resized_size: tuple[int, int]  # (h, w) inside the padding


def prepare(
    image: Image, metadata: DeployMetadata, canvas: tuple[int, int] | None, source: str
) -> PreparedImage:
    """Resize, normalise and pad `image` by the file's metadata; `canvas`: the fixed (h, w) of a static file.

    source: how a message names the image.
    """
    original = (image.height, image.width)
    size = resized_size(*original, metadata.shortest_edge, metadata.longest_edge)
    if canvas is not None and (size[0] > canvas[0] or size[1] > canvas[1]):
        raise GsmlpError(
            f"{source} ({original[1]}x{original[0]} pixels) is {size[1]}x{size[0]} after the model's "
            f"resize rule (shortest edge {metadata.shortest_edge}, longest {metadata.longest_edge}), larger "
            f"than the {canvas[1]}x{canvas[0]} input the file was exported for: export with --dynamic "
            f"(DETR), or with --height {size[0]} --width {size[1]} or more (DETR's rule can make the long "
            "side a pixel or two longer than the longest edge)"
        )
    pixel_values = preprocess(
        image, size, metadata.pad_multiple, metadata.image_mean, metadata.image_std, canvas
    )
    pixel_mask = np.zeros((1, *pixel_values.shape[2:]), dtype=np.int64)
    pixel_mask[0, : size[0], : size[1]] = 1
    return PreparedImage(pixel_values, pixel_mask, original, size)


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


def _model_settings(path: Path) -> tuple[DeployMetadata, tuple[int, int] | None, str]:
    """The file's metadata, its fixed input size (or None) and the start of its sample's command line."""
    from gsmlp.runtime.file_facts import engine_facts, is_engine, read_onnx_facts
    from gsmlp.runtime.ort_session import op_library

    if is_engine(path):
        metadata, canvas = engine_facts(path)
        return metadata, canvas, f"gsmlp_trt_sample --plugin LIB --engine {path}"
    metadata, canvas = read_onnx_facts(path)
    library = op_library()
    ops = f" --ops-lib {library}" if library is not None else ""
    return metadata, canvas, f"gsmlp_ort_sample --onnx {path}{ops}"


def _write(args: argparse.Namespace) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], str]:
    """Write the raw input; returns (array, resized (h, w), original (h, w), the sample's command start)."""
    size_given = _parse_size(args.size) if args.size else None
    if args.shortest_edge < 1 or args.longest_edge < args.shortest_edge or args.pad_multiple < 1:
        raise GsmlpError("need 1 <= --shortest-edge <= --longest-edge and --pad-multiple >= 1")
    if args.longest_edge > MAX_EDGE:
        raise GsmlpError(f"--longest-edge must be at most {MAX_EDGE}, got {args.longest_edge}")
    require_file(args.image, "IMAGE")
    plan = OutputPlan(force=args.force)
    plan.file(args.out, "OUT", RAW_OUTPUT)
    plan.check({"IMAGE": args.image, "--model": args.model})
    image = open_rgb(args.image)
    original = (image.height, image.width)
    command = "gsmlp_trt_sample --plugin LIB --engine ENGINE"
    if args.model is not None:
        metadata, canvas, command = _model_settings(args.model)
        prepared = prepare(image, metadata, canvas, str(args.image))
        array, size = prepared.pixel_values, prepared.resized_size
    elif size_given is not None:
        size = size_given
        array = preprocess(image, size)
    else:
        size = resized_size(*original, args.shortest_edge, args.longest_edge)
        array = preprocess(image, size, args.pad_multiple)
    write_bytes_atomic(args.out, array.tobytes())
    return array, size, original, command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gsmlp.runtime.prepare_image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", type=Path, help="any image pillow reads (JPEG, PNG, ...)")
    parser.add_argument("out", type=Path, help="the raw float32 file to write")
    parser.add_argument(
        "--model",
        type=Path,
        metavar="FILE",
        help="an ONNX file of `gsmlp export` or an engine of `gsmlp build`: its metadata gives every setting "
        "below, and its fixed input size (if any) the padded size",
    )
    parser.add_argument("--shortest-edge", type=int, default=800, help="target of the shorter side (800)")
    parser.add_argument("--longest-edge", type=int, default=1333, help="bound on the longer side (1333)")
    parser.add_argument("--pad-multiple", type=int, default=64, help="pad H and W up to multiples of it (64)")
    parser.add_argument("--size", help="exact HxW instead, unpadded (for an engine built for one fixed size)")
    parser.add_argument("--force", action="store_true", help="replace an OUT that is not an earlier one")
    args = parser.parse_args(argv)
    if args.model is not None and args.size:
        parser.error("--model and --size contradict each other: the file says how to size its input")
    try:
        array, size, (height, width), command = _write(args)
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
        f"run: {command} --input {args.out} "
        f"--height {array.shape[2]} --width {array.shape[3]} "
        f"--valid-height {size[0]} --valid-width {size[1]} "
        f"--image-height {height} --image-width {width}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
