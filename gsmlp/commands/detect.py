"""`gsmlp detect`: a deployable file and images in; COCO-results JSON and one annotated PNG per image out.

Torch-free with --onnx and --engine: this module and what it imports at the top need numpy, pillow and the
runtime only (a test runs the command in a subprocess and checks that torch was never imported).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsmlp.args import (
    FRACTION,
    MODEL_HELP,
    POSITIVE,
    THREADS,
    add_data_arguments,
    add_force_argument,
    add_ort_op_argument,
    check_ranges,
    data_inputs,
    model_input,
)
from gsmlp.errors import GsmlpError
from gsmlp.io import OutputKind, folder_entries
from gsmlp.model.decoding import DEFAULT_TOP_K
from gsmlp.paths import OutputPlan, require_file
from gsmlp.runtime.deployed import SHOWN_SCORE

if TYPE_CHECKING:
    from PIL.Image import Image

    from gsmlp.model.decoding import Detections
    from gsmlp.runtime.deployed import DeployedModel

RESULTS_NAME = "detections.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
PRINTED_IMAGES = 20  # one line per image up to this many; a summary beyond


def _is_detect_output(path: Path) -> bool:
    names = folder_entries(path)
    return (
        path.is_dir()
        and RESULTS_NAME in names
        and all(name == RESULTS_NAME or (name.endswith(".png") and (path / name).is_file()) for name in names)
    )


DETECT_OUTPUT = OutputKind(f"an earlier output of gsmlp detect ({RESULTS_NAME} and PNGs)", _is_detect_output)

HELP = "detect objects in images with an ONNX file, an engine or a checkpoint; write JSON and pictures"
DESCRIPTION = f"""\
Run a deployable detector on images and write what it found:
  OUT/{RESULTS_NAME}  the detections in the COCO results format ([{{"image_id" or "file_name",
                       "category_id", "bbox": [x, y, width, height] in image pixels, "score"}}, ...]):
                       "image_id" where the images come with annotations (--data), the image's path otherwise
  OUT/NAME.png         each image with its boxes, label names and scores drawn on it

The model is one of:
  --onnx FILE     a file of `gsmlp export`, in ONNX Runtime: the GatedSparseMLP nodes run on the gsmlp op
                  library where it is built (sparse), else on their ONNX function body (--ort-op)
  --engine FILE   an engine of `gsmlp build`, in TensorRT with the GatedSparseMLP plugin (needs a GPU,
                  tensorrt and pycuda)
  --model MODEL   a checkpoint, through PyTorch: for side-by-side checks of the deployed files
The file itself says how to resize and normalise images, how to decode the outputs and what the labels are
called (`gsmlp export` records it); a file written by an older gsmlp is refused with what it lacks.
--onnx and --engine import neither torch nor transformers.

Images are files or folders (their images, not sub-folders), or a dataset: --data shapes-val, or a COCO
instances JSON with --images DIR (then --limit N). Per image, the --score threshold applies to the
{DEFAULT_TOP_K} best-scoring candidates (use --score 0 for a COCO evaluation).

examples:
  gsmlp detect --onnx runs/gated.onnx photo.jpg holiday/ --out runs/detections
  gsmlp detect --onnx runs/gated.onnx --data shapes-val --limit 8 --out runs/shapes-detections
  gsmlp detect --engine runs/gated.engine photo.jpg --out runs/trt-detections
  gsmlp detect --model runs/detr-small-mgs photo.jpg --out runs/pytorch-detections
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (one of)")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", type=Path, metavar="FILE", help="an ONNX file of `gsmlp export`")
    source.add_argument("--engine", type=Path, metavar="FILE", help="a TensorRT engine of `gsmlp build`")
    source.add_argument("--model", metavar="MODEL", help=f"through PyTorch, {MODEL_HELP}")
    parser.add_argument(
        "inputs", nargs="*", type=Path, metavar="IMAGE", help="image files or folders of them"
    )
    add_data_arguments(parser, what="images with annotations (instead of IMAGE)", required=False)
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="the folder to write (atomically)"
    )
    parser.add_argument(
        "--score",
        type=float,
        default=SHOWN_SCORE,
        metavar="S",
        help="keep detections scoring at least S, in [0, 1] (default: %(default)s)",
    )
    runtime = parser.add_argument_group("runtime")
    add_ort_op_argument(runtime)
    runtime.add_argument(
        "--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads (default: its own choice)"
    )
    runtime.add_argument(
        "--plugin-lib",
        type=Path,
        metavar="PATH",
        help="libgsmlp_trt_plugin.so for --engine (default: $GSMLP_TRT_PLUGIN, else the one installed)",
    )
    add_force_argument(parser)


@dataclass
class ImageSource:
    """Where the images come from: named files, or a dataset (then each has a COCO image id)."""

    files: list[Path]
    dataset: Any = None  # gsmlp.data.coco.CocoDataset
    limit: int | None = None

    def count(self) -> int:
        return self.dataset.count(self.limit) if self.dataset is not None else len(self.files)

    def images(self, unreadable: list[str]) -> Iterator[tuple[int | str, Path, Image]]:
        """(COCO image id or the path as given, path, RGB image); unreadable images are named and skipped."""
        from gsmlp.runtime.prepare_image import open_rgb

        if self.dataset is not None:
            for image_id, image in self.dataset.iterate(self.limit):
                yield image_id, self.dataset.image_path(image_id), image
            unreadable.extend(self.dataset.unreadable)
            return
        for path in self.files:
            try:
                image = open_rgb(path)
            except GsmlpError as exc:
                print(f"warning: skipping {exc}", file=sys.stderr)
                unreadable.append(str(path))
                continue
            yield str(path), path, image


def _image_files(inputs: list[Path]) -> list[Path]:
    """Every image named, folders expanded to the images directly inside them (sorted by name)."""
    files = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise GsmlpError(
                    f"the folder {path} holds no image (files ending {', '.join(IMAGE_SUFFIXES)})"
                )
            files.extend(found)
        else:
            files.append(require_file(path, "IMAGE"))
    return files


def _check_args(args: argparse.Namespace) -> ImageSource:
    """Options, inputs and the output folder, before any model is opened."""
    check_ranges(args, {"score": FRACTION, "limit": POSITIVE, "threads": THREADS})
    if args.inputs and args.data:
        raise GsmlpError("give images (IMAGE ...) or --data, not both")
    if not args.inputs and not args.data:
        raise GsmlpError("no images: name image files or folders, or a dataset with --data")
    if args.images and not args.data:
        raise GsmlpError(
            "--images is the image folder of a JSON --data; name image files or folders directly"
        )
    if args.limit is not None and not args.data:
        raise GsmlpError("--limit is for --data; name the images you want instead")
    if args.plugin_lib is not None and args.engine is None:
        raise GsmlpError(
            "--plugin-lib is for --engine (the TensorRT plugin); --onnx uses the ONNX Runtime op library"
        )
    for option in ("onnx", "engine", "plugin_lib"):
        if getattr(args, option) is not None:
            require_file(getattr(args, option), "--" + option.replace("_", "-"))
    files = _image_files(args.inputs)
    plan = OutputPlan(force=args.force)
    plan.folder(args.out, "--out", DETECT_OUTPUT)
    inputs = {"--onnx": args.onnx, "--engine": args.engine, "--model": model_input(args.model)}
    plan.check(
        {**inputs, "--plugin-lib": args.plugin_lib, "IMAGE": files, **data_inputs(args.data, args.images)}
    )
    if not args.data:
        return ImageSource(files)
    from gsmlp.data.coco import resolve_dataset  # pycocotools: only for images that come with annotations

    return ImageSource([], resolve_dataset(args.data, args.images), args.limit)


def _open_pytorch(spec: str) -> DeployedModel:
    """A checkpoint through PyTorch, fed and decoded exactly as the deployed files are."""
    from gsmlp.deploy_metadata import from_props
    from gsmlp.exporter.deploy_metadata import runtime_metadata
    from gsmlp.model.loaders import load_detector
    from gsmlp.runtime.deployed import DeployedModel
    from gsmlp.validation.backends import PyTorchBackend

    loaded = load_detector(spec)
    mode = "gated" if loaded.gated else "dense"
    props = runtime_metadata(loaded.model, loaded.family, mode, "fp32", loaded.preprocess)
    backend = PyTorchBackend(loaded.model)
    return DeployedModel(loaded.source, from_props(props, loaded.source), None, "PyTorch", backend.run)


def open_model(args: argparse.Namespace) -> DeployedModel:
    from gsmlp.runtime import deployed

    if args.onnx is not None:
        return deployed.open_onnx(args.onnx, op=args.ort_op, threads=args.threads or 0)
    if args.engine is not None:
        return deployed.open_engine(args.engine, plugin_lib=args.plugin_lib)
    return _open_pytorch(args.model)


def coco_records(key: int | str, detections: Detections) -> list[dict]:
    """COCO results records ([x, y, w, h] boxes) of one image: keyed by image_id (int) or file_name."""
    field = "image_id" if isinstance(key, int) else "file_name"
    records = []
    for (x0, y0, x1, y1), score, label in zip(
        detections.boxes.tolist(), detections.scores.tolist(), detections.labels.tolist(), strict=True
    ):
        records.append(
            {field: key, "category_id": int(label), "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}
        )
    return records


def picture_name(path: Path, taken: set[str]) -> str:
    """`photo.png` for photo.jpg; `photo-2.png` when another image already took that name."""
    name, number = f"{path.stem}.png", 1
    while name in taken:
        number += 1
        name = f"{path.stem}-{number}.png"
    taken.add(name)
    return name


def _summary(detections: Detections, label_name: Callable[[int], str], shown: int = 5) -> str:
    """ "3 detections: circle 0.98, square 0.91, star 0.60" (the best `shown` of them named)."""
    pairs = list(zip(detections.labels.tolist(), detections.scores.tolist(), strict=True))
    found = ", ".join(f"{label_name(label)} {score:.2f}" for label, score in pairs[:shown])
    more = f", ... ({len(pairs) - shown} more)" if len(pairs) > shown else ""
    return f"{len(pairs)} detections" + (f": {found}{more}" if found else "")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gsmlp.io import atomic_directory, write_json_atomic
    from gsmlp.runtime.deployed import detect_image
    from gsmlp.runtime.draw import draw_detections, save_png

    source = _check_args(args)
    model = open_model(args)
    label_name = model.metadata.label_name
    implementation = model.implementation if model.metadata.mode == "gated" else "none (dense file)"
    records: list[dict] = []
    unreadable: list[str] = []
    lines: list[str] = []
    taken: set[str] = set()
    with atomic_directory(args.out, DETECT_OUTPUT, force=args.force) as folder:
        with tqdm(total=source.count(), desc="detecting", unit="img") as progress:
            for key, path, image in source.images(unreadable):
                found = detect_image(model, image, source=str(path), score_threshold=args.score)
                name = picture_name(path, taken)
                save_png(draw_detections(image, found, label_name), folder / name)
                records.extend(coco_records(key, found))
                lines.append(f"{path}: {_summary(found, label_name)} -> {name}")
                progress.update(1)
        if not taken:
            if source.dataset is not None:
                raise source.dataset.usable_images_error(source.limit)
            raise GsmlpError(
                f"no image could be used: {len(unreadable)} unreadable ({', '.join(unreadable[:5])})"
            )
        write_json_atomic(folder / RESULTS_NAME, records)
    for line in lines[:PRINTED_IMAGES]:
        print(line)
    if len(lines) > PRINTED_IMAGES:
        print(f"... and {len(lines) - PRINTED_IMAGES} more images")
    images = f"{len(taken)} image{'s' if len(taken) != 1 else ''}"
    print(
        f"wrote {args.out}/{RESULTS_NAME}: {len(records)} detections with score >= {args.score} on "
        f"{images}, and one picture per image beside it ({model.source}, {model.metadata.family} "
        f"{model.metadata.mode}; GatedSparseMLP ran on: {implementation})"
    )
    if unreadable:
        print(f"note: {len(unreadable)} unreadable images skipped: {', '.join(unreadable)}")
    return 0
