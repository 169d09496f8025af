"""Find and load libgsmlp_kernels with ctypes, and mirror the C ABI's structs (every op's)."""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import gsmlp
from gsmlp.errors import GsmlpError
from gsmlp.paths import require_library

LIBRARY_NAME = "libgsmlp_kernels.so"
ENV_VAR = "GSMLP_KERNELS_LIBRARY"  # an explicit path wins over the installed library

OK, INVALID_ARGUMENT, WORKSPACE_TOO_SMALL, NOT_SUPPORTED, CUDA_ERROR, NOT_BUILT = range(6)
FP32, FP16 = 0, 1


class Problem(ctypes.Structure):
    _fields_ = [
        ("tokens", ctypes.c_int64),
        ("d_model", ctypes.c_int64),
        ("hidden", ctypes.c_int64),
        ("block_size", ctypes.c_int64),
        ("rank", ctypes.c_int64),
        ("threshold", ctypes.c_float),
        ("dtype", ctypes.c_int),
    ]


class Tensors(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_void_p),
        ("x_row_stride", ctypes.c_int64),
        ("w1", ctypes.c_void_p),
        ("b1", ctypes.c_void_p),
        ("w2", ctypes.c_void_p),
        ("b2", ctypes.c_void_p),
        ("gate_down_w", ctypes.c_void_p),
        ("gate_up_w", ctypes.c_void_p),
        ("gate_up_b", ctypes.c_void_p),
        ("y", ctypes.c_void_p),
        ("active_blocks", ctypes.c_void_p),
        ("block_mask", ctypes.c_void_p),  # ABI 2
    ]


class MsdaProblem(ctypes.Structure):
    """gsmlp_msda_problem (gsmlp/multi_scale_deformable_attention.h)."""

    _fields_ = [
        ("batch", ctypes.c_int64),
        ("value_len", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("levels", ctypes.c_int64),
        ("queries", ctypes.c_int64),
        ("points", ctypes.c_int64),
        ("dtype", ctypes.c_int),
    ]


class MsdaTensors(ctypes.Structure):
    """gsmlp_msda_tensors."""

    _fields_ = [
        ("value", ctypes.c_void_p),
        ("spatial_shapes", ctypes.c_void_p),
        ("level_start_index", ctypes.c_void_p),
        ("sampling_locations", ctypes.c_void_p),
        ("attention_weights", ctypes.c_void_p),
        ("output", ctypes.c_void_p),
    ]


# The C ABI version this mirror describes; a library of another version is refused (its structs differ).
ABI_VERSION = 3


def candidate_paths() -> list[Path]:
    """Where the library may be: $GSMLP_KERNELS_LIBRARY, then gsmlp/lib/ of every gsmlp package root.

    A wheel has one root; an editable install spreads `gsmlp` over the source tree and the folder the
    build installed into, so every entry of gsmlp.__path__ is searched.
    """
    if os.environ.get(ENV_VAR):
        return [Path(os.environ[ENV_VAR])]  # named explicitly: used or refused, never replaced
    paths = []
    for root in gsmlp.__path__:
        paths.append(Path(root) / "lib" / LIBRARY_NAME)
    return paths


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    problem_p, tensors_p = ctypes.POINTER(Problem), ctypes.POINTER(Tensors)
    msda_p, msda_t = ctypes.POINTER(MsdaProblem), ctypes.POINTER(MsdaTensors)
    signatures = {
        "gsmlp_abi_version": (ctypes.c_int, []),
        "gsmlp_status_string": (ctypes.c_char_p, [ctypes.c_int]),
        "gsmlp_last_error": (ctypes.c_char_p, []),
        "gsmlp_cpu_isa": (ctypes.c_char_p, []),
        "gsmlp_cpu_workspace_size": (ctypes.c_size_t, [problem_p, ctypes.c_int]),
        "gsmlp_cpu_forward": (
            ctypes.c_int,
            [problem_p, tensors_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int],
        ),
        "gsmlp_cpu_pack_weights": (
            ctypes.c_int,
            [problem_p, tensors_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int],
        ),
        "gsmlp_cpu_forward_prepacked": (
            ctypes.c_int,
            [problem_p, tensors_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int],
        ),
        "gsmlp_cpu_packed_size": (ctypes.c_size_t, [problem_p]),
        "gsmlp_cpu_scratch_size": (ctypes.c_size_t, [problem_p, ctypes.c_int]),
        "gsmlp_cpu_run_packed": (
            ctypes.c_int,
            [
                problem_p,
                tensors_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_void_p,
            ],
        ),  # fmt: skip
        "gsmlp_cuda_built": (ctypes.c_int, []),
        "gsmlp_cuda_available": (ctypes.c_int, []),
        "gsmlp_cuda_workspace_size": (ctypes.c_size_t, [problem_p]),
        "gsmlp_cuda_forward": (
            ctypes.c_int,
            [problem_p, tensors_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p],
        ),
        "gsmlp_msda_cpu_forward": (ctypes.c_int, [msda_p, msda_t, ctypes.c_int, ctypes.c_void_p]),
        "gsmlp_msda_cuda_forward": (ctypes.c_int, [msda_p, msda_t, ctypes.c_void_p]),
        "gsmlp_msda_cuda_forward_host_levels": (ctypes.c_int, [msda_p, msda_t, ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


@cache
def load() -> ctypes.CDLL | None:
    """The loaded library, or None where it was not built (see `why_not_loaded`)."""
    if os.environ.get(ENV_VAR):
        require_library(os.environ[ENV_VAR], f"${ENV_VAR}")
    for path in candidate_paths():
        if path.is_file():
            try:
                lib = ctypes.CDLL(str(require_library(path, "the kernel library")))
                # The version first: an older library lacks the newer entry points that _declare looks up.
                lib.gsmlp_abi_version.restype = ctypes.c_int
            except (OSError, AttributeError) as exc:
                raise GsmlpError(f"the kernel library {path} cannot be loaded: {exc}") from None
            if lib.gsmlp_abi_version() != ABI_VERSION:
                raise GsmlpError(
                    f"{path} has C ABI version {lib.gsmlp_abi_version()}, but this gsmlp expects "
                    f"{ABI_VERSION}: reinstall gsmlp so that the library is rebuilt"
                )
            return _declare(lib)
    return None


def why_not_loaded() -> str:
    searched = ", ".join(str(p) for p in candidate_paths())
    return f"{LIBRARY_NAME} was not found (searched {searched})"


def status_message(lib: ctypes.CDLL, status: int) -> str:
    detail = lib.gsmlp_last_error().decode()
    name = lib.gsmlp_status_string(status).decode()
    return f"{name}: {detail}" if detail else name
