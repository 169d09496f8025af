"""Argument groups shared by the commands, so every `--model` means the same thing, and the checks every
command runs on its options before any work: numbers in range, inputs of the right kind."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gsmlp.errors import GsmlpError
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.device_choice import DEFAULT_DEVICE, DEVICE_CHOICES
from gsmlp.model.resize import MAX_BATCH, MAX_EDGE
from gsmlp.model.sampling_choice import DEFAULT_SAMPLING, SAMPLING_CHOICES
from gsmlp.model.zoo import ACCEPTED_FORMS

if TYPE_CHECKING:
    from gsmlp.model.loaders import LoadedDetector

T = TypeVar("T")

MODEL_HELP = f"the detector: {ACCEPTED_FORMS}"
FORCE_HELP = (
    "replace an existing output that is not an earlier output of this command (gsmlp otherwise refuses, "
    "naming what is there). The replacement stays atomic; an input is never overwritten, and a file is "
    "never replaced by a folder or a folder by a file"
)
# Bounds that keep a typo from asking for more memory or threads than any machine has.
MAX_IMAGE_SIDE = MAX_EDGE
MAX_THREADS = 1024
MAX_BLOCK_SIZE = 8192
MAX_SEED = 2**32 - 1  # numpy's generators take seeds up to this


def add_model_argument(
    parser: argparse.ArgumentParser, *, required: bool = True, torch_sampling: bool = True
) -> None:
    """--model and --block-size; --torch-sampling too where PyTorch runs the model (not export's trace)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, metavar="MODEL", help=MODEL_HELP)
    group.add_argument(
        "--block-size",
        type=int,
        default=DEFAULT_BLOCK_SIZE,
        metavar="N",
        help=f"hidden neurons per gate block when wrapping a plain detector (default: {DEFAULT_BLOCK_SIZE}; "
        "a gated checkpoint keeps its own)",
    )
    if torch_sampling:
        add_torch_sampling_argument(group)


TORCH_SAMPLING_HELP = (
    "what computes Deformable DETR's multi-scale sampling in PyTorch: op (the gsmlp torch op on the CPU "
    "kernel, faster; an error if it is not built), transformers (transformers' own grid_sample module, "
    "unmodified), auto (op where it is built, else transformers, with a warning; default). The two agree "
    "within the bound in docs/EXPORT.md, not bit for bit"
)


def add_torch_sampling_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--torch-sampling", choices=SAMPLING_CHOICES, default=DEFAULT_SAMPLING, help=TORCH_SAMPLING_HELP
    )


DEVICE_HELP = (
    "where PyTorch runs the model's forward passes: cpu (default) or cuda. Under torchrun each rank uses "
    "GPU LOCAL_RANK and NCCL; alone, the current GPU. Calibration's per-layer fitting stays on the CPU "
    "(docs/SCALING.md)"
)


def add_device_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str = DEVICE_HELP
) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=DEFAULT_DEVICE, help=help_text)


def check_device(args: argparse.Namespace) -> None:
    """--device names a device this process can compute on: found before any rank starts work."""
    from gsmlp.model.placement import require_device  # imports torch

    require_device(args.device)


DATA_HELP = "a generated split (shapes-train, shapes-val) or a COCO instances JSON (with --images)"


class DeprecatedSpelling(argparse.Action):
    """An old spelling of an option, kept for one release: it stores into the new option's dest, says so on
    stderr, and is remembered so that range errors name the spelling the user typed."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        new = "--" + self.dest.replace("_", "-")
        print(f"warning: {option_string} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)
        spellings = dict(getattr(namespace, "spellings", None) or {})
        spellings[self.dest] = option_string
        namespace.spellings = spellings


def add_data_arguments(
    parser: argparse.ArgumentParser,
    *,
    prefix: str = "",
    what: str = "images",
    required: bool = True,
    default: str | None = None,
    limit: int | None = None,
    old_limits: tuple[str, ...] = (),
) -> None:
    """--data, --images and --limit, meaning the same in every command.

    prefix "eval-" gives --eval-data/--eval-images/--eval-limit; old_limits are deprecated spellings of
    --limit (one release). `what` names the images in the help ("calibration images", ...).
    """
    group = parser.add_argument_group(f"{prefix}data".replace("-", " "))
    data_help = f"{what}: {DATA_HELP}" + (f"; default {default}" if default else "")
    group.add_argument(f"--{prefix}data", required=required, default=default, metavar="D", help=data_help)
    group.add_argument(
        f"--{prefix}images", metavar="DIR", help=f"the image folder of a COCO JSON --{prefix}data"
    )
    dest = f"{prefix}limit".replace("-", "_")
    where = f" (default {limit})" if limit is not None else ""
    group.add_argument(
        f"--{prefix}limit", type=int, default=limit, metavar="N", help=f"only the first N images{where}"
    )
    for old in old_limits:
        group.add_argument(old, type=int, dest=dest, action=DeprecatedSpelling, help=argparse.SUPPRESS)


def add_force_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def load_model_from_args(args: argparse.Namespace, option: str = "model") -> LoadedDetector:
    """The one place a command loads a model: the spec of --model (or of `option`, e.g. masks_from)."""
    # Imported here: torch and transformers take seconds to import, and `gsmlp --help` needs neither.
    from gsmlp.model.loaders import load_detector

    return load_detector(
        getattr(args, option),
        block_size=getattr(args, "block_size", DEFAULT_BLOCK_SIZE),
        sampling=getattr(args, "torch_sampling", DEFAULT_SAMPLING),
    )


def from_args(options: type[T], args: argparse.Namespace, **given: Any) -> T:
    """An option dataclass filled from the parsed options of the same names; `given` sets the others."""
    names = {field.name for field in dataclasses.fields(options)} - set(given)
    return options(**{name: getattr(args, name) for name in names if hasattr(args, name)}, **given)


def field_defaults(options: type) -> dict[str, Any]:
    """An option dataclass's field defaults by name: the library's defaults become the parser's."""
    found = {}
    for field in dataclasses.fields(options):
        if field.default is not dataclasses.MISSING:
            found[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            found[field.name] = field.default_factory()
    return found


def model_input(spec: str | None) -> Path | None:
    """The path a --model reads: its file or folder, or a built-in name's folder."""
    from gsmlp.model import zoo

    if spec is None:
        return None
    if zoo.is_builtin(spec) and not Path(spec).exists():
        return zoo.ZOO_DIR / spec
    return Path(spec)


def data_inputs(data: str | None, images: str | None, prefix: str = "") -> dict[str, Path | None]:
    """What a --data (a generated split's folder, or a COCO JSON) and its --images read, by option name.

    prefix: "eval-" for calibrate's --eval-data and --eval-images.
    """
    from gsmlp.data.shapes import SPLITS, cache_root

    split = data is not None and data in SPLITS
    return {
        f"--{prefix}data": None if data is None else cache_root() / data if split else Path(data),
        f"--{prefix}images": None if images is None else Path(images),
    }


@dataclass(frozen=True)
class Range:
    """Where a numeric option may lie; None leaves that side open-ended."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is excluded
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        if self.high is None:
            return f"{'greater than' if self.low_open else 'at least'} {self.low}"
        if self.low is None:
            return f"{'less than' if self.high_open else 'at most'} {self.high}"
        if not self.low_open and not self.high_open:
            return f"between {self.low} and {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


POSITIVE = Range(1)
FRACTION = Range(0.0, 1.0)
BATCH = Range(1, MAX_BATCH)
THREADS = Range(1, MAX_THREADS)
BLOCK_SIZE = Range(1, MAX_BLOCK_SIZE)


def check_ranges(args: argparse.Namespace, ranges: Mapping[str, Range]) -> None:
    """Every numeric option given (dest -> Range) lies in its range; NaN and infinity never do."""
    for dest, allowed in ranges.items():
        value = getattr(args, dest, None)
        if value is not None and not allowed.holds(value):
            spelled = (getattr(args, "spellings", None) or {}).get(dest)
            option = spelled or "--" + dest.replace("_", "-")
            raise GsmlpError(f"{option} must be {allowed.describe()}, got {value}")


ORT_OP_HELP = (
    "how ONNX Runtime computes the GatedSparseMLP nodes: library (the gsmlp op library, sparse; an error if "
    "it is not built), function (the ONNX function body, dense then select), auto (the library where it is "
    "built, else the function body; default). Reports name the one that ran"
)


def add_ort_op_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    from gsmlp.runtime.ort_session import OP_CHOICES  # torch-free, cheap

    parser.add_argument("--ort-op", choices=OP_CHOICES, default="auto", help=ORT_OP_HELP)
