"""gsmlp_cuda_selfcheck: the CUDA kernels (both ops) through the C ABI without torch, as the TensorRT plugins'
enqueue calls them (plugins/kernels/tests/cuda_selfcheck.cu; scripts/gpu_check.sh runs it under
compute-sanitizer).

Its --cpu mode runs the same cases through the CPU kernel: that checks the program's own reference and
tolerances on a machine without a GPU, so a failure on a lent GPU is the CUDA kernels' and not the checker's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build" / "cuda-selfcheck"


def _arch() -> str:
    """The present GPU's architecture (sm_90a on Hopper), else one architecture to compile for."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return "90a" if (major, minor) == (9, 0) else f"{major}{minor}"
    return "80"


@pytest.fixture(scope="module")
def selfcheck() -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc: the self-check is built only with the CUDA kernels")
    configure = subprocess.run(
        ["cmake", "-S", str(REPO_ROOT), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
         f"-DGSMLP_CUDA_ARCHITECTURES={_arch()}", "-DGSMLP_BUILD_CUDA_SELFCHECK=ON"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert configure.returncode == 0, configure.stdout[-4000:] + configure.stderr[-4000:]
    assert "gsmlp_cuda_selfcheck: built" in configure.stdout, configure.stdout[-4000:]
    build = subprocess.run(
        ["cmake", "--build", str(BUILD_DIR), "--target", "gsmlp_cuda_selfcheck", "-j", "2"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    # -Werror=all-warnings and -Wall -Wextra -Werror: a warning fails here.
    assert build.returncode == 0, build.stdout[-8000:] + build.stderr[-8000:]
    return BUILD_DIR / "plugins" / "kernels" / "gsmlp_cuda_selfcheck"


def test_reference_agrees_with_the_cpu_kernel(selfcheck: Path) -> None:
    run = subprocess.run([str(selfcheck), "--cpu"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    # GatedSparseMLP: 5 cases x (active_blocks written, active_blocks NULL); MultiScaleDeformableAttention:
    # the 5 cases of the CPU entry point (host level tables; the other two are the CUDA entries' own)
    assert all(line.startswith("ok ") for line in lines), run.stdout
    assert len([line for line in lines if " msda " not in line]) == 10, run.stdout
    msda = [line for line in lines if " msda " in line]
    assert len(msda) == 5 and any("pixel borders" in line for line in msda), run.stdout
    assert "active_blocks NULL" in run.stdout and "strided rows" in run.stdout


def test_bad_arguments_exit_2(selfcheck: Path) -> None:
    run = subprocess.run([str(selfcheck), "--gpu"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "usage:" in run.stdout


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="a CUDA GPU is present: the GPU test below runs instead"
)
def test_without_a_gpu_it_says_so_and_checks_nothing(selfcheck: Path) -> None:
    run = subprocess.run([str(selfcheck)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "no CUDA device" in run.stdout and "nothing was checked" in run.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_kernels_match_the_reference_on_the_gpu(selfcheck: Path) -> None:
    run = subprocess.run([str(selfcheck)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("PASS: 0 failure(s)")
