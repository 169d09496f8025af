"""Argument groups shared by the commands, so every `--model` means the same thing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gsmlp.model.zoo import BUILTIN_NAMES

if TYPE_CHECKING:
    from gsmlp.model.loaders import LoadedDetector

MODEL_HELP = (
    "the detector: a Hugging Face DETR / Deformable DETR folder (config.json + model.safetensors or "
    "pytorch_model.bin), a facebookresearch/detr checkpoint (.pth), a gsmlp gated checkpoint folder "
    f"(holding gsmlp.json), or a built-in name ({', '.join(BUILTIN_NAMES)})"
)


def add_model_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, metavar="MODEL", help=MODEL_HELP)
    group.add_argument(
        "--block-size",
        type=int,
        default=32,
        metavar="N",
        help="hidden neurons per gate block when wrapping a plain detector (default: 32; "
        "a gated checkpoint keeps its own)",
    )


def load_model_from_args(args: argparse.Namespace) -> LoadedDetector:
    # Imported here: torch and transformers take seconds to import, and `gsmlp --help` needs neither.
    from gsmlp.model.loaders import load_detector

    return load_detector(args.model, block_size=getattr(args, "block_size", 32))


ORT_OP_HELP = (
    "how ONNX Runtime computes the GatedSparseMLP nodes: library (the gsmlp op library, sparse; an error if "
    "it is not built), function (the ONNX function body, dense then select), auto (the library where it is "
    "built, else the function body; default). Reports name the one that ran"
)


def add_ort_op_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    from gsmlp.runtime.ort_session import OP_CHOICES  # torch-free, cheap

    parser.add_argument("--ort-op", choices=OP_CHOICES, default="auto", help=ORT_OP_HELP)
