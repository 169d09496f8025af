"""ONNX Runtime sessions that run `GatedSparseMLP` with the gsmlp op library where it is built.

    from gsmlp.runtime.ort_session import open_session
    opened = open_session("gated.onnx")                 # the library if built, else the function body
    opened.session.run(None, {"pixel_values": ..., "pixel_mask": ...})
    opened.implementation                                # "gsmlp op library (CPU)" or "function body"

Deploy-time code: needs onnxruntime and numpy, not torch. The library is `libgsmlp_onnxruntime_ops.so`
(plugins/onnxruntime/), installed beside the kernel library when gsmlp was built with
GSMLP_ONNXRUNTIME_INCLUDE set. Without it, ONNX Runtime inlines each node's local-function body: the same
results, computed densely and then selected (slower than the dense model).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gsmlp
from gsmlp.errors import GsmlpError, NotBuiltError
from gsmlp.gpu_choice import cuda_device_index
from gsmlp.op_identity import OP_TYPE
from gsmlp.paths import require_library

LIBRARY_NAME = "libgsmlp_onnxruntime_ops.so"
KERNELS_NAME = "libgsmlp_kernels.so"
ENV_VAR = "GSMLP_ONNXRUNTIME_OPS_LIBRARY"  # an explicit path wins over the installed library
OP_CHOICES = ("auto", "library", "function")
FUNCTION_BODY = "function body"
HOW_TO_BUILD = (
    "build it: set GSMLP_ONNXRUNTIME_INCLUDE to the include/ folder of an ONNX Runtime release "
    "(C API version >= 29; in this project's checkouts ../shared/third_party/onnxruntime/include) and "
    "reinstall gsmlp (`pip install -e .` or ./scripts/test.sh); see plugins/onnxruntime/README.md"
)
# Session config entries the library reads (plugins/onnxruntime/common/ortCpuThreads.h).
CONFIG_CPU_WORKERS = "gsmlp.cpu_workers"
CONFIG_CPU_THREADS = "gsmlp.cpu_threads"
THREADING_CHOICES = ("onnxruntime", "openmp")
# Where ONNX Runtime looks up the external data of a model handed over as bytes (ONNX defines it relative to
# the model file; bytes have none, and without this entry ONNX Runtime uses the working folder).
CONFIG_EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"


def library_candidates() -> list[Path]:
    """$GSMLP_ONNXRUNTIME_OPS_LIBRARY alone where it is set, else gsmlp/lib/ of every gsmlp package root
    (see gsmlp.kernels)."""
    if os.environ.get(ENV_VAR):
        return [Path(os.environ[ENV_VAR])]
    return [Path(root) / "lib" / LIBRARY_NAME for root in gsmlp.__path__]


def op_library() -> Path | None:
    """The built op library, or None. A library named by $GSMLP_ONNXRUNTIME_OPS_LIBRARY is used or refused
    (GsmlpError: missing, or not a shared library), never silently replaced by the installed one."""
    if os.environ.get(ENV_VAR):
        return require_library(os.environ[ENV_VAR], f"${ENV_VAR}")
    return next((path for path in library_candidates() if path.is_file()), None)


def why_no_library() -> str:
    searched = ", ".join(str(p) for p in library_candidates())
    where = f"the gsmlp ONNX Runtime op library {LIBRARY_NAME} is not built (searched {searched})"
    return f"{where}; {HOW_TO_BUILD}"


def library_status() -> str:
    """One line for `gsmlp info` and the commands that fall back: where the library is, or how to build it."""
    library = op_library()
    if library is not None:
        return f"gsmlp ONNX Runtime op library: {library}"
    return f"note: {why_no_library()}. ONNX Runtime runs {OP_TYPE} through its function body meanwhile"


def _cuda_kernels_built(library: Path) -> bool:
    """Whether the kernel library beside `library` has its CUDA kernels (then the CUDA op is registered)."""
    kernels = library.with_name(KERNELS_NAME)
    if not kernels.is_file():
        return False
    try:
        return bool(ctypes.CDLL(str(require_library(kernels, "the kernel library"))).gsmlp_cuda_built())
    except (OSError, AttributeError, GsmlpError):
        return False


def _cuda_driver_present() -> bool:
    # onnxruntime-gpu lists the CUDA provider even with no GPU, then falls back noisily; ask the driver.
    return ctypes.util.find_library("cuda") is not None


def _providers(ort: Any, use_cuda: bool | None) -> list[str | tuple[str, dict[str, str]]]:
    use_cuda = _cuda_driver_present() if use_cuda is None else use_cuda
    providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
    if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": str(cuda_device_index())}))
    return providers


def _library_for(op: str) -> Path | None:
    if op not in OP_CHOICES:
        raise GsmlpError(f"--ort-op {op!r}: choose one of {', '.join(OP_CHOICES)}")
    if op == "function":
        return None
    library = op_library()
    if library is None and op == "library":
        raise NotBuiltError(f"--ort-op library: {why_no_library()}")
    return library


@dataclass
class OpenedSession:
    session: Any  # onnxruntime.InferenceSession
    implementation: (
        str  # what runs each GatedSparseMLP node: "gsmlp op library (CPU|CUDA)" or "function body"
    )
    library: Path | None


def _implementation(session: Any, library: Path | None) -> str:
    if library is None:
        return FUNCTION_BODY
    on_cuda = session.get_providers()[0] == "CUDAExecutionProvider" and _cuda_kernels_built(library)
    return f"gsmlp op library ({'CUDA' if on_cuda else 'CPU'})"


def session_options(
    library: Path | None,
    *,
    threads: int = 0,
    threading: str = "onnxruntime",
    log_severity: int = 3,
    spin: bool = True,
) -> Any:
    """SessionOptions with the library registered (where given) and the threads the kernel should use.

    spin=False stops idle intra-op threads from spinning: benchmarks that interleave several sessions need
    it, or one session's spinning threads take the cores from the next one's run.
    """
    import onnxruntime as ort

    if threading not in THREADING_CHOICES:
        raise GsmlpError(f"threading {threading!r}: choose one of {', '.join(THREADING_CHOICES)}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = log_severity  # fp16 graphs make ORT warn about every node it cannot pre-fold
    if library is not None:
        require_library(library, "the ONNX Runtime op library")
        try:
            options.register_custom_ops_library(str(library))
        except Exception as exc:  # ORT raises its own types; a library that does not load is named
            raise GsmlpError(f"ONNX Runtime cannot load the op library {library}: {exc}") from None
        # The kernel splits its tokens into one share per intra-op thread; it cannot ask ORT for their count.
        if threads > 0:
            options.add_session_config_entry(CONFIG_CPU_WORKERS, str(threads))
        options.add_session_config_entry(CONFIG_CPU_THREADS, threading)
    return options


def open_session(
    model: str | os.PathLike[str] | bytes,
    *,
    op: str = "auto",
    threads: int = 0,
    use_cuda: bool | None = None,
    threading: str = "onnxruntime",
    log_severity: int = 3,
    label: str | None = None,
    spin: bool = True,
    external_data_folder: str | os.PathLike[str] | None = None,
) -> OpenedSession:
    """An InferenceSession on `model` (a path or serialized bytes).

    A model given as bytes finds its external data in `external_data_folder` (the folder of the file the
    bytes were read from), whatever the working folder; with none given, a model with external data is
    refused, never read from the working folder.

    op: "auto" registers the op library where it is built; "library" requires it; "function" never loads
    it (ONNX Runtime inlines the local-function body). threads: intra-op threads (0: ONNX Runtime's default),
    shared by ONNX Runtime's ops and the library's kernel. use_cuda: None puts the CUDA provider first where a
    CUDA driver and onnxruntime-gpu are present. threading: "openmp" runs the library's CPU kernel on its
    own OpenMP threads instead of ONNX Runtime's (only to measure the difference; see docs/PERFORMANCE.md).
    label: how errors name the model (default: its path, or "the model" for bytes). spin: see
    `session_options`.
    """
    import onnxruntime as ort

    library = _library_for(op)
    options = session_options(
        library, threads=threads, threading=threading, log_severity=log_severity, spin=spin
    )
    source = model if isinstance(model, bytes) else str(model)
    with contextlib.ExitStack() as stack:
        if isinstance(model, bytes):
            folder = external_data_folder or stack.enter_context(tempfile.TemporaryDirectory())
            options.add_session_config_entry(CONFIG_EXTERNAL_DATA_FOLDER, os.path.abspath(folder))
        try:
            session = ort.InferenceSession(source, options, providers=_providers(ort, use_cuda))
        except Exception as exc:  # ORT raises its own exception types; the message is what the user needs
            where = label or ("the model" if isinstance(model, bytes) else str(model))
            raise GsmlpError(f"ONNX Runtime cannot load {where}: {_first_line(exc)}") from None
    return OpenedSession(session, _implementation(session, library), library)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
