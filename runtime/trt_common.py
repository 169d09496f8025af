"""What the builder and the runner share: lazy imports of tensorrt and pycuda, the plugin library, a logger.

tensorrt and pycuda are imported only when an engine is built or run, so the rest of gsmlp works without
them; a missing one is reported as what to install, not as a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from gsmlp.errors import GsmlpError

# The plugin registers the op under the identity the exporter writes (the ONNX parser binds by these).
from gsmlp.op_identity import OP_TYPE as PLUGIN_NAME
from gsmlp.op_identity import PLUGIN_NAMESPACE, PLUGIN_VERSION
from gsmlp.paths import require_library

PLUGIN_LIBRARY_NAME = "libgsmlp_trt_plugin.so"
PLUGIN_ENV = "GSMLP_TRT_PLUGIN"
_INSTALL_HINT = (
    "install the `trt` extra on a machine with TensorRT and a CUDA GPU: pip install 'gsmlp[trt]' "
    "(tensorrt and pycuda)"
)

# Library paths this process already registered: TensorRT refuses to register a creator twice.
_loaded_libraries: dict[str, Any] = {}


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or GsmlpError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise GsmlpError(f"the Python package `tensorrt` is not available ({exc}); {_INSTALL_HINT}") from None
    if not hasattr(tensorrt, "Builder"):
        # The package index serves a stub that installs without the TensorRT libraries.
        raise GsmlpError(
            "the installed `tensorrt` package has no TensorRT libraries (it is the index stub); "
            + _INSTALL_HINT
        )
    return tensorrt


def import_pycuda() -> ModuleType:
    """pycuda.driver with TensorRT's (the primary) CUDA context current on this thread."""
    try:
        import pycuda.autoprimaryctx  # noqa: F401  (makes the device's primary context current)
        import pycuda.driver as cuda
    except ImportError as exc:
        raise GsmlpError(f"the Python package `pycuda` is not available ({exc}); {_INSTALL_HINT}") from None
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError when no GPU or driver is usable
        raise GsmlpError(f"no usable CUDA GPU: pycuda could not start CUDA ({exc})") from None
    return cuda


def tensorrt_missing() -> str | None:
    """Why TensorRT engines cannot be built or run here (tensorrt, pycuda or a GPU missing), or None."""
    try:
        import_tensorrt()
        import_pycuda()
    except GsmlpError as exc:
        return str(exc)
    return None


def gpu_description() -> dict[str, str]:
    """Name and compute capability ("9.0") of the current GPU."""
    cuda = import_pycuda()
    device = cuda.Context.get_device()
    major, minor = device.compute_capability()
    return {"name": device.name(), "compute_capability": f"{major}.{minor}"}


def find_plugin_library(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The plugin library: `explicit`, else $GSMLP_TRT_PLUGIN, else the one installed with gsmlp."""
    if explicit is not None:
        return require_library(explicit, "the plugin library").resolve()
    from_env = os.environ.get(PLUGIN_ENV)
    if from_env:
        return require_library(from_env, f"${PLUGIN_ENV}").resolve()
    here = Path(__file__).resolve().parent
    candidates = [
        here.parent / "lib" / PLUGIN_LIBRARY_NAME,  # installed wheel: gsmlp/lib beside gsmlp/runtime
        here.parent / "build" / "cmake" / "plugins" / "tensorrt" / PLUGIN_LIBRARY_NAME,  # checkout
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise GsmlpError(
        f"no GatedSparseMLP plugin library found: pass --plugin-lib PATH/{PLUGIN_LIBRARY_NAME} or set "
        f"${PLUGIN_ENV} (build it with `cmake -S . -B build/cmake -DTensorRT_ROOT=<TensorRT> && "
        f"cmake --build build/cmake --target gsmlp_trt_plugin`; see plugins/tensorrt/README.md)"
    )


def load_plugin_library(trt: ModuleType, path: Path) -> None:
    """Register the library's creators with TensorRT (once per process) and check GatedSparseMLP is there."""
    key = str(path.resolve())
    if key not in _loaded_libraries:
        registry = trt.get_plugin_registry()
        handle = registry.load_library(key)
        if handle is None:
            raise GsmlpError(
                f"TensorRT could not load the plugin library {path} (its log above says why; a library that "
                "registers a GatedSparseMLP creator already loaded from elsewhere is refused)"
            )
        _loaded_libraries[key] = handle
    creator = trt.get_plugin_registry().get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    if creator is None:
        raise GsmlpError(
            f"{path} loaded but registered no {PLUGIN_NAME} version {PLUGIN_VERSION} creator: "
            "is it the gsmlp plugin library?"
        )


def make_logger(trt: ModuleType, verbose: bool = False) -> Any:
    """A TensorRT logger that writes warnings and errors (and with `verbose`, everything) to stderr."""
    severity = trt.ILogger.Severity
    threshold = severity.VERBOSE if verbose else severity.WARNING
    # Severity values grow as messages get less important (INTERNAL_ERROR = 0 ... VERBOSE = 4).
    order = [severity.INTERNAL_ERROR, severity.ERROR, severity.WARNING, severity.INFO, severity.VERBOSE]
    names = {
        severity.INTERNAL_ERROR: "internal error",
        severity.ERROR: "error",
        severity.WARNING: "warning",
        severity.INFO: "info",
        severity.VERBOSE: "verbose",
    }

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, sev: Any, msg: str) -> None:
            if sev in (severity.INTERNAL_ERROR, severity.ERROR):
                self.errors.append(msg)
            if order.index(sev) <= order.index(threshold):
                print(f"[TensorRT {names[sev]}] {msg}", file=sys.stderr)

    return _Logger()
