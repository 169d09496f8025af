"""Every resource failure is a named error, never "internal error" (issue 27, class 4): a full disk while
calibrate writes, real (a small tmpfs, where this machine lets the tests mount one) and as the kernel reports
a file-size limit. Absurd sizes in config.json and ONNX inputs and libraries that are not libraries are
cases of the bad-input matrix (tests/test_cli_errors.py)."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workspace import CALIBRATE, make_workspace, run_gsmlp

CALIBRATE_SMALL = [*CALIBRATE, "--gate-steps", "5"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("resources"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator:
    """mount(size) -> a fresh tmpfs of that many KiB at tmp_path/disk; unmounted after the test."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = []

    def mount(kib: int) -> Path:
        if mounted:
            subprocess.run(["umount", str(point)], check=True)
            mounted.clear()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root in a namespace that allows it): "
                        f"{done.stderr.strip()}")  # fmt: skip
        mounted.append(point)
        return point

    yield mount
    if mounted:
        subprocess.run(["umount", str(point)], check=False)


def _assert_named_failure(result: subprocess.CompletedProcess, message: bytes) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(b"error:")]
    assert errors and message in errors[-1] and b"was not written" in errors[-1], result.stderr
    assert b"internal error" not in result.stderr and b"Traceback" not in result.stderr
    assert b".tmp" not in errors[-1]  # the output as the user knows it, not gsmlp's temporary name


def test_a_full_disk_during_calibrate_is_named_and_leaves_nothing(ws: Path, small_disk) -> None:
    """The disk fills at each stage in turn (statistics, analysis, the checkpoint, the report): every run
    fails naming the file and "No space left on device", and the disk is left empty."""
    roomy = small_disk(64 * 1024)
    assert run_gsmlp([*CALIBRATE_SMALL, "--out", str(roomy / "c")], ws).returncode == 0
    needed = sum(p.stat().st_size for p in (roomy / "c").iterdir()) // 1024
    shutil.rmtree(roomy / "c")
    for fraction in (0.05, 0.5, 0.9):
        disk = small_disk(max(16, int(needed * fraction)))
        result = run_gsmlp([*CALIBRATE_SMALL, "--out", str(disk / "c")], ws)
        _assert_named_failure(result, b"No space left on device")
        assert list(disk.iterdir()) == [], f"{fraction}: left {list(disk.iterdir())}"


def test_a_file_size_limit_during_calibrate_is_named_and_leaves_nothing(ws: Path) -> None:
    def small_files_only() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    before = sorted(p.name for p in ws.iterdir())
    result = run_gsmlp([*CALIBRATE_SMALL, "--out", "limited"], ws, preexec_fn=small_files_only)
    _assert_named_failure(result, b"File too large")
    assert sorted(p.name for p in ws.iterdir()) == before
