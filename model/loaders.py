"""`load_detector`: every form `--model` takes -> a LoadedDetector ready for gsmlp.

Accepted: a Hugging Face DETR / Deformable DETR folder, a facebookresearch/detr `.pth`, a gsmlp gated
checkpoint folder, or a built-in name.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.utils import logging as hf_logging

from gsmlp.errors import GsmlpError
from gsmlp.model import zoo
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.checkpoint import GSMLP_META, load_gated
from gsmlp.model.detector import (
    FAMILIES,
    LoadedDetector,
    build_detector,
    prepare_config,
    read_config,
    ready_for_gsmlp,
)
from gsmlp.model.official_detr import config_from_official, official_to_hf
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.sampling import use_sampling
from gsmlp.model.sampling_choice import DEFAULT_SAMPLING
from gsmlp.model.weights import load_strict, read_pickle_checkpoint, read_state_dict, report_misfit

__all__ = ["LoadedDetector", "build_detector", "load_detector", "ACCEPTED_FORMS"]

ACCEPTED_FORMS = zoo.ACCEPTED_FORMS
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference
OFFICIAL_SUFFIXES = (".pth", ".pt")


def load_detector(
    spec: str | Path, *, block_size: int = DEFAULT_BLOCK_SIZE, sampling: str = DEFAULT_SAMPLING
) -> LoadedDetector:
    """Load a detector from any accepted form; every FFN wrapped, eval mode.

    sampling: what computes Deformable DETR's multi-scale sampling in PyTorch (gsmlp.model.sampling_choice).
    """
    loaded = _load(spec, block_size)
    use_sampling(loaded.model, sampling)
    return loaded


def _load(spec: str | Path, block_size: int) -> LoadedDetector:
    if isinstance(spec, str) and zoo.is_builtin(spec) and not Path(spec).exists():
        return load_hf_dir(zoo.builtin_dir(spec), block_size=block_size, source=spec)
    path = Path(spec)
    if not path.exists():
        raise GsmlpError(f"{spec}: no such file or folder, and not a built-in name; give {ACCEPTED_FORMS}")
    if path.is_dir():
        if (path / GSMLP_META).is_file():
            return load_gated(path)
        if (path / "config.json").is_file():
            return load_hf_dir(path, block_size=block_size)
        raise GsmlpError(f"{path} is a folder without config.json or {GSMLP_META}; give {ACCEPTED_FORMS}")
    if path.suffix in OFFICIAL_SUFFIXES:
        return load_official_pth(path, block_size=block_size)
    raise GsmlpError(f"{path}: unknown format {path.suffix or '(no suffix)'!r}; give {ACCEPTED_FORMS}")


def load_hf_dir(
    folder: Path, *, block_size: int = DEFAULT_BLOCK_SIZE, source: str | None = None
) -> LoadedDetector:
    config, family = read_config(folder / "config.json")
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        expected = " or ".join(WEIGHT_FILES)
        raise GsmlpError(f"{folder} has config.json but no weights: expected {expected}")
    model = from_hf_state_dict(config, family, read_state_dict(weights), weights)
    preprocessor = folder / "preprocessor_config.json"
    preprocess = PreprocessConfig.from_json(preprocessor) if preprocessor.is_file() else PreprocessConfig()
    return LoadedDetector(ready_for_gsmlp(model, block_size), family, preprocess, source or str(folder))


def from_hf_state_dict(
    config: PretrainedConfig, family: str, state_dict: dict[str, torch.Tensor], source: Path
) -> nn.Module:
    """A detector holding exactly the weights of a Hugging Face state dict.

    transformers itself maps the key names: its save_pretrained writes some models (Deformable DETR)
    under the Hub's historical names, so only its own loader reads every such file correctly.
    """
    model_class = FAMILIES[family][2]
    with _quiet_transformers():
        model, info = model_class.from_pretrained(
            None,
            config=prepare_config(config, family),
            state_dict=state_dict,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # mismatches come back in `info`, reported below
        )
    mismatched = [f"{key} {tuple(got)} vs model {tuple(want)}" for key, got, want in info["mismatched_keys"]]
    report_misfit(source, sorted(info["missing_keys"]), sorted(info["unexpected_keys"]), mismatched)
    return model.eval()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Misfits are reported as one GsmlpError; transformers' own load report and progress bar are noise."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_official_pth(path: Path, *, block_size: int = DEFAULT_BLOCK_SIZE) -> LoadedDetector:
    """A facebookresearch/detr checkpoint: {"model": state_dict, "args": Namespace, ...}."""
    checkpoint = read_pickle_checkpoint(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise GsmlpError(f"{path} is not a facebookresearch/detr checkpoint: it has no 'model' state dict")
    official = checkpoint["model"]
    args = checkpoint.get("args")
    config = config_from_official(official, args if isinstance(args, argparse.Namespace) else None)
    model = build_detector(config, "detr")
    load_strict(model, official_to_hf(official), path)
    return LoadedDetector(ready_for_gsmlp(model, block_size), "detr", PreprocessConfig(), str(path))
