"""The TensorRT plugin library without TensorRT's library or a GPU.

Builds it against the TensorRT headers and runs each plugin's C++ test (creator fields, serialization round
trip, formats, shapes, workspace), then checks that the shared library loads and exports exactly TensorRT's
two entry points.

Needs $GSMLP_TENSORRT_INCLUDE: a folder holding NvInfer.h (TensorRT's include/, or the include/ folder of the
TensorRT open-source repository). Skips, with the reason, only where the TensorRT or CUDA headers are absent:
with them, a plugin that CMake leaves out is a failure.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from gsmlp.op_identity import MSDA_OP_TYPE, PLUGIN_VERSION
from tests.conftest import tensorrt_headers

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build" / "trt-plugin-tests"
PLUGIN_DIR = BUILD_DIR / "plugins" / "tensorrt"
# One C++ test program per plugin (plugins/tensorrt/tests/).
PLUGIN_TESTS = ("gsmlp_trt_plugin_test", "gsmlp_trt_msda_plugin_test")


def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def plugin_build() -> Path:
    """Configure the repository's CMake project with the plugin tests on, build the plugin and its test."""
    include = tensorrt_headers()
    configure = _run(
        [
            "cmake",
            # Forget a TensorRT found by an earlier run, so the headers named now are the ones used.
            "-U",
            "TensorRT_*",
            "-S",
            str(REPO_ROOT),
            "-B",
            str(BUILD_DIR),
            f"-DTensorRT_ROOT={include}",
            "-DGSMLP_BUILD_TRT_PLUGIN_TESTS=ON",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        timeout=600,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    for line in configure.stdout.splitlines():
        if "gsmlp TensorRT plugin: skipped" in line:
            reason = line.strip("- ").strip()
            if "CUDA toolkit headers" in line:
                pytest.skip(reason)
            pytest.fail(f"the TensorRT headers are given, but CMake left the plugin out: {reason}")
    build = _run(
        [
            "cmake",
            "--build",
            str(BUILD_DIR),
            "--target",
            "gsmlp_trt_plugin",
            *PLUGIN_TESTS,
            "-j",
            "2",
        ],
        timeout=1800,
    )
    # -Wall -Wextra -Werror: a warning in the plugin fails here.
    assert build.returncode == 0, build.stdout[-8000:] + build.stderr[-8000:]
    return PLUGIN_DIR


@pytest.mark.parametrize("program", PLUGIN_TESTS)
def test_plugin_cpp_tests_pass(plugin_build: Path, program: str) -> None:
    # The second plugin's test also holds its creator to the Python identity (gsmlp.op_identity).
    identity = [MSDA_OP_TYPE, PLUGIN_VERSION] if program == "gsmlp_trt_msda_plugin_test" else []
    result = subprocess.run(
        [str(plugin_build / program), *identity], capture_output=True, text=True, timeout=120
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout.splitlines()[-1]


def test_library_exports_only_the_tensorrt_entry_points(plugin_build: Path) -> None:
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not installed")
    library = plugin_build / "libgsmlp_trt_plugin.so"
    result = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    exported = {line.split()[-1] for line in result.stdout.splitlines() if line.strip()}
    assert exported == {"getCreators", "setLoggerFinder"}


def test_library_loads_without_libnvinfer_and_lists_a_creator_per_plugin(plugin_build: Path) -> None:
    # dlopen as TensorRT's loadLibrary does; nothing from libnvinfer may be needed (it is not installed here).
    library = ctypes.CDLL(str(plugin_build / "libgsmlp_trt_plugin.so"))
    get_creators = library.getCreators
    get_creators.restype = ctypes.c_void_p
    get_creators.argtypes = [ctypes.POINTER(ctypes.c_int32)]  # int32_t& is a pointer at the ABI level
    count = ctypes.c_int32(-1)
    creators = get_creators(ctypes.byref(count))
    assert count.value == 2  # GatedSparseMLP, MultiScaleDeformableAttention
    assert creators
    assert all(ctypes.cast(creators, ctypes.POINTER(ctypes.c_void_p))[i] for i in range(2))  # the objects
    library.setLoggerFinder.argtypes = [ctypes.c_void_p]
    library.setLoggerFinder(None)  # TensorRT may pass no finder; the library must accept it
