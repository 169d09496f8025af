"""Reading untrusted weight files and loading them strictly, with messages that name what is wrong."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from gsmlp.errors import GsmlpError

# Types a weights-only unpickler may build besides tensors: official DETR training checkpoints carry
# their command line as an argparse.Namespace. Nothing here can run code.
SAFE_GLOBALS = [argparse.Namespace]
SHOWN = 5  # how many offending keys a message names


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise GsmlpError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise GsmlpError(f"{path} is truncated or not a safetensors file: {exc}") from None


def read_pickle_checkpoint(path: Path) -> object:
    """torch.load with weights_only=True: tensors, containers and SAFE_GLOBALS only; no code runs."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GsmlpError(f"{path}: no such file") from None
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            reason = _unsafe_reason(str(exc))
            raise GsmlpError(
                f"{path} was refused: it needs {reason}, and gsmlp loads checkpoints with "
                "torch.load(weights_only=True) so that no pickled code runs (allowed besides tensors: "
                f"{', '.join(t.__module__ + '.' + t.__name__ for t in SAFE_GLOBALS)})"
            ) from None
        raise GsmlpError(f"{path} is truncated or not a PyTorch checkpoint: {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GsmlpError(f"{path} is truncated or not a PyTorch checkpoint: {first_line}") from None


def _unsafe_reason(message: str) -> str:
    for line in message.splitlines():
        line = line.strip()
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.split("WeightsUnpickler error:")[-1].strip()
    return "a Python object that is not a tensor"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A bare state dict from .safetensors, or from a .bin / .pth holding one."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    loaded = read_pickle_checkpoint(path)
    return as_state_dict(loaded, path)


def as_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise GsmlpError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return loaded


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GsmlpError(f"{path}: no such file") from None
    except OSError as exc:
        raise GsmlpError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GsmlpError(f"{path} is truncated or not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GsmlpError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def _first(keys: list[str]) -> str:
    more = f" (and {len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load every weight of `model` from `state_dict`; any missing, extra or misshapen key is an error."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    report_misfit(source, missing, unexpected, mismatched)
    model.load_state_dict(state_dict, strict=True)


def report_misfit(
    source: str | Path, missing: list[str], unexpected: list[str], mismatched: list[str]
) -> None:
    """Raise one GsmlpError naming the first few missing, unexpected and misshapen keys, if any."""
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_first(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_first(mismatched)}")
    if problems:
        raise GsmlpError(f"the weights in {source} do not fit the model: " + "; ".join(problems))
