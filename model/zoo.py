"""The built-in detectors: small DETR and Deformable DETR trained by gsmlp itself, shipped as HF folders."""

from __future__ import annotations

from pathlib import Path

from gsmlp.errors import GsmlpError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
BUILTIN_NAMES = ("detr-small", "deformable-detr-small")
# What a --model may name: the one sentence that the loaders' errors, every command's help and `gsmlp --help`
# use (torch-free here, so that help needs no torch).
ACCEPTED_FORMS = (
    "a Hugging Face DETR / Deformable DETR folder (config.json + model.safetensors or pytorch_model.bin), "
    "a facebookresearch/detr checkpoint (.pth), a gsmlp gated checkpoint folder (with gsmlp.json), "
    f"or a built-in name ({', '.join(BUILTIN_NAMES)})"
)


def is_builtin(name: str) -> bool:
    return name in BUILTIN_NAMES


def builtin_dir(name: str) -> Path:
    """The Hugging Face folder of a built-in detector."""
    if not is_builtin(name):
        raise GsmlpError(f"unknown built-in model {name!r}: built-in names are {', '.join(BUILTIN_NAMES)}")
    folder = ZOO_DIR / name
    if not (folder / "config.json").is_file():
        raise GsmlpError(
            f"the built-in model {name!r} is not shipped in this installation ({folder} has no config.json); "
            "pass a Hugging Face folder, a facebookresearch/detr .pth or a gsmlp gated checkpoint instead"
        )
    return folder
