"""Which GPU the deploy-time runtimes use: CUDA_DEVICE, the variable pycuda's default context reads.

One variable for both runtimes, so that a process pinned to a GPU runs TensorRT (through pycuda) and ONNX
Runtime's CUDA provider on the same one. Under torchrun, gsmlp.distributed sets it to LOCAL_RANK for each
rank (unless it is set already); without it, GPU 0, as pycuda and ONNX Runtime choose.
"""

from __future__ import annotations

import os

from gsmlp.errors import GsmlpError

CUDA_DEVICE_ENV = "CUDA_DEVICE"


def cuda_device_index() -> int:
    """The GPU this process's TensorRT and ONNX Runtime CUDA sessions run on."""
    text = os.environ.get(CUDA_DEVICE_ENV, "0")
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        raise GsmlpError(f"{CUDA_DEVICE_ENV}={text!r}: give the GPU's index, a whole number from 0")
    return index
