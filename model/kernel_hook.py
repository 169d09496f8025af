"""Route the gated mode of GatedSparseMLP layers through the compiled kernel op (gsmlp.kernels).

The model owns this routing, not the kernel library: the library knows tensors and a C ABI, never a module,
so it stays importable by the TensorRT and ONNX Runtime sides, and the model -> kernels arrow runs one way.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from gsmlp.kernels import gated_sparse_mlp, load
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.wrap import gated_layers

NOT_BUILT_WARNING = "gsmlp kernels not built: using the PyTorch reference"
SUPPORTED_DTYPES = (torch.float32, torch.float16)
_warned = False


def _warn_not_built_once() -> None:
    global _warned
    if not _warned:
        warnings.warn(NOT_BUILT_WARNING, RuntimeWarning, stacklevel=3)
        _warned = True


def _kernel_can_run(layer: GatedSparseMLP, x: torch.Tensor) -> bool:
    # The op has no autograd formula: anything that needs gradients stays on the reference.
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters())
    )
    device_ok = x.device.type == "cpu" or (x.device.type == "cuda" and load().gsmlp_cuda_built())
    dtypes_ok = x.dtype in SUPPORTED_DTYPES and all(p.dtype == x.dtype for p in layer.parameters())
    return device_ok and dtypes_ok and not needs_grad


def run_layer(layer: GatedSparseMLP, x: torch.Tensor, threads: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel op on one gated layer's weights: (y, active blocks per token). threads 0: all cores."""
    gate = layer.gate
    return gated_sparse_mlp(
        x,
        layer.fc1.weight,
        layer.fc1.bias,
        layer.fc2.weight,
        layer.fc2.bias,
        gate.down.weight,
        gate.up.weight,
        gate.up.bias,
        layer.block_size,
        float(layer.threshold),
        threads,
    )


def module_kernel(layer: GatedSparseMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The `kernel` hook of GatedSparseMLP: (y, active blocks per token), or None to use the reference."""
    if not _kernel_can_run(layer, x):
        return None
    return run_layer(layer, x)


def install(model: nn.Module) -> int:
    """Set the kernel on every GatedSparseMLP with a gate; returns how many layers now use it.

    Without the compiled library this warns once and leaves the model on the PyTorch reference (returns 0).
    """
    layers = [layer for _, layer in gated_layers(model) if layer.gate is not None]
    if load() is None:
        _warn_not_built_once()
        return 0
    for layer in layers:
        layer.kernel = module_kernel
    return len(layers)


def uninstall(model: nn.Module) -> None:
    """Back to the PyTorch reference on every GatedSparseMLP."""
    for _, layer in gated_layers(model):
        layer.kernel = None
