"""Reading untrusted weight files and loading them strictly, with messages that name what is wrong."""

from __future__ import annotations

import argparse
import errno
import json
import os
import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.paths import require_file

# Types a weights-only unpickler may build besides tensors: official DETR training checkpoints carry
# their command line as an argparse.Namespace. Nothing here can run code.
SAFE_GLOBALS = [argparse.Namespace]
SHOWN = 5  # how many offending keys a message names


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    require_file(path, "weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GsmlpError(f"{path} is corrupt (truncated, or not a safetensors file): {exc}") from None


def write_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors' save_file, with its I/O failures (a full disk, a size limit) raised as the OSError they
    are, so that gsmlp.io names the output that was not written instead of a library's error type."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else errno.EIO
        raise OSError(code, os.strerror(code), str(path)) from None


def read_pickle_checkpoint(path: Path) -> object:
    """torch.load with weights_only=True: tensors, containers and SAFE_GLOBALS only; no code runs.

    A file that needs any other Python global is refused as unsafe, naming the global; a file that is not
    a well-formed checkpoint at all is called corrupt.
    """
    require_file(path, "checkpoint")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = _blocked_global(str(exc))
        if blocked:
            raise GsmlpError(
                f"{path} was refused as unsafe: it needs the Python global {blocked}, which could run code; "
                "gsmlp loads checkpoints with torch.load(weights_only=True) so that no pickled code runs "
                f"(allowed besides tensors: {_allowed_globals()})"
            ) from None
        raise GsmlpError(
            f"{path} is corrupt (truncated, or not a PyTorch checkpoint): {_first_line(exc)}"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, struct and zip errors for damaged files
        raise GsmlpError(
            f"{path} is corrupt (truncated, or not a PyTorch checkpoint): {_first_line(exc)}"
        ) from None


def _allowed_globals() -> str:
    return ", ".join(f"{kind.__module__}.{kind.__name__}" for kind in SAFE_GLOBALS)


def _first_line(exc: Exception) -> str:
    """The line of torch's message that says what is wrong (its weights-only errors open with advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[index + 1] if index + 1 < len(lines) else line)
    return lines[0] if lines else type(exc).__name__


def _blocked_global(message: str) -> str | None:
    """The global torch's weights-only unpickler refused ("GLOBAL posix.system"), or None when it refused
    the file for another reason (an opcode it does not know: the bytes are not a checkpoint)."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


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
    require_file(path, "file")
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise GsmlpError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise GsmlpError(f"{path} is corrupt (truncated, or not valid JSON): {exc}") from None
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
