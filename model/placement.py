"""Where a detector's PyTorch forward passes run: `--device` (cpu or cuda), and the CPU for everything else.

The forward passes (evaluation, activation statistics, threshold refits) are where a GPU pays: they move to
the device. What calibration decides per layer from the recorded tokens (gate training on a 1024-token
batch, thresholds, SIBS pruning, permutations) is small, runs on one CPU thread by design
(calibration.gates.single_thread), and reads CPU statistics, so it runs with the model on the CPU
(`on_cpu`), and checkpoints are written from CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.model.device_choice import DEVICE_CHOICES


def require_device(device: str) -> None:
    """Refuse a device this process cannot compute on, before any work (and before a process group)."""
    if device not in DEVICE_CHOICES:
        raise GsmlpError(f"--device {device!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise GsmlpError("--device cuda: torch sees no CUDA GPU (a CPU-only torch, or no GPU here)")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (a model is moved as a whole here)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def to_device(inputs: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Model inputs on `device` (the same tensors where they are already there)."""
    return {name: _moved(value, device) for name, value in inputs.items()}


def _moved(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    if value.device != device and value.dim() and not any(value.stride()):
        # One element seen everywhere (the sweep cache's stand-ins): moved as such, not copied out in full.
        return value[(0,) * value.dim()].to(device).expand(value.shape)
    return value.to(device, non_blocking=True)


@contextmanager
def on_cpu(model: nn.Module) -> Iterator[None]:
    """The model on the CPU for the block, then back on its device, with whatever the block added to it
    (a gate, a narrowed FFN) moved along."""
    device = model_device(model)
    model.to("cpu")
    try:
        yield
    finally:
        model.to(device)
