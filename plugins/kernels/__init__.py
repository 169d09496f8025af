"""The gsmlp CPU/CUDA kernel library, reached through its C ABI, and its ops registered as torch ops.

    from gsmlp import kernels
    kernels.available()          # the compiled library was found and loads
    y, active = torch.ops.gsmlp.gated_sparse_mlp(x, w1, b1, w2, b2, gd, gu, gb, block_size, threshold, 0)
    out = kernels.multi_scale_deformable_attention(value, shapes, level_start_index, locations, weights)

The library (libgsmlp_kernels.so, C ABI in include/gsmlp/) does not link libtorch; the TensorRT plugins and
the ONNX Runtime op library link the same file. This package knows tensors only: routing a model's layers
through the ops is the model's business (gsmlp.model.kernel_hook), so nothing here imports the model.
"""

from __future__ import annotations

from gsmlp.kernels._calls import pack_weights_ms
from gsmlp.kernels._library import load, why_not_loaded
from gsmlp.kernels._msda import MSDA_OP_NAME, multi_scale_deformable_attention
from gsmlp.kernels._op import OP_NAME, gated_sparse_mlp

__all__ = [
    "MSDA_OP_NAME",
    "OP_NAME",
    "available",
    "cpu_isa",
    "cuda_available",
    "cuda_built",
    "gated_sparse_mlp",
    "load",
    "multi_scale_deformable_attention",
    "pack_weights_ms",
    "why_not_loaded",
]


def available() -> bool:
    """True where the compiled kernel library was found and loaded."""
    return load() is not None


def cuda_built() -> bool:
    """True where the library was compiled with its CUDA kernels (a GPU may still be absent)."""
    lib = load()
    return bool(lib and lib.gsmlp_cuda_built())


def cuda_available() -> bool:
    """True where the CUDA kernels are built and a CUDA device is visible to them."""
    lib = load()
    return bool(lib and lib.gsmlp_cuda_built() and lib.gsmlp_cuda_available())


def cpu_isa() -> str:
    """The CPU code path chosen at run time ("avx512f", "avx2-fma", "portable"); "" without the library."""
    lib = load()
    return lib.gsmlp_cpu_isa().decode() if lib else ""
