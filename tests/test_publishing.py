"""Outputs are published whole (issue 27, class 3), through real processes, signals and file-size limits:
a report and its companions as one set, nothing failing after publishing, a killed run's temporaries
removed by the next run, one run per output at a time, inputs unchanged while a run reads them."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.workspace import CALIBRATE, EVAL, VALIDATE, gsmlp_process, make_workspace, run_gsmlp, wait_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPORT_SET = ("r.json", "r.md", "r_ap.png", "r_sparsity.png")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("publishing"))


def _hashes(folder: Path) -> dict[str, str]:
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def _staging(folder: Path, name: str) -> bool:
    """Whether the run's output folder is being written: its temporary folder, which lives until the run
    publishes (not the writability probe, a `.tmp` file that lives for microseconds)."""
    return any(
        p.is_dir() and p.name.endswith(".tmp") for p in folder.iterdir() if p.name.startswith(f".{name}.")
    )


def test_a_full_disk_publishes_no_part_of_a_report_set(ws: Path, tmp_path: Path) -> None:
    """The file that no longer fits fails the run; no file of the new set is published, the earlier set
    stays byte for byte, and no temporary is left (the kernel's own EFBIG, under RLIMIT_FSIZE)."""
    out = tmp_path / "r.json"
    first = run_gsmlp([*VALIDATE, "--report", str(out)], ws)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_SET)
    before = _hashes(tmp_path)
    sizes = sorted((tmp_path / name).stat().st_size for name in REPORT_SET)
    assert sizes[0] < sizes[-1]

    def largest_file_does_not_fit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (sizes[-1] - 1, sizes[-1] - 1))

    second = run_gsmlp([*VALIDATE, "--report", str(out)], ws, preexec_fn=largest_file_does_not_fit)
    assert second.returncode == 1 and b"was not written" in second.stderr, second.stderr
    assert b"File too large" in second.stderr and b"internal error" not in second.stderr
    assert b".tmp" not in second.stderr  # the user's path is named, not gsmlp's temporary one
    assert _hashes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_SET)


def test_sigkill_leaves_temporaries_that_the_next_run_removes(ws: Path) -> None:
    argv = [*CALIBRATE, "--gate-steps", "100000", "--out", "killed"]
    process = gsmlp_process(argv, ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _staging(ws, "killed"), process)
        process.send_signal(signal.SIGKILL)  # uncatchable: nothing of gsmlp's cleans up
        process.wait(timeout=60)
    finally:
        process.kill()
    left = _leftovers(ws, "killed")
    assert ".killed.lock" in left and any(n.endswith(".tmp") for n in left), left
    again = run_gsmlp([*CALIBRATE, "--gate-steps", "5", "--out", "killed"], ws)
    assert again.returncode == 0, again.stderr
    assert _leftovers(ws, "killed") == [] and (ws / "killed" / "gsmlp.json").is_file()
    shutil.rmtree(ws / "killed")


def test_a_second_run_onto_the_same_output_is_refused_naming_the_first(ws: Path) -> None:
    argv = [*CALIBRATE, "--gate-steps", "100000", "--out", "busy"]
    first = gsmlp_process(argv, ws, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _staging(ws, "busy"), first)
        assert first.poll() is None, first.stderr.read()
        temporaries = _leftovers(ws, "busy")
        second = run_gsmlp([*CALIBRATE, "--gate-steps", "5", "--out", "busy"], ws)
        assert second.returncode == 1
        assert f"being written by another gsmlp run (pid {first.pid}".encode() in second.stderr
        assert b"--gate-steps 100000 --out busy" in second.stderr  # the first run's command line
        assert _leftovers(ws, "busy") == temporaries  # the refused run touched nothing of the first's
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err
    assert _leftovers(ws, "busy") == [] and not (ws / "busy").exists()


def _close_stdout() -> None:
    os.close(1)


def test_a_closed_stdout_never_fails_a_run_that_published(ws: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    closed = run_gsmlp([*EVAL, "--report", str(report)], ws, preexec_fn=_close_stdout)
    assert closed.returncode == 0 and report.is_file(), closed.stderr
    assert b"stdout was closed" in closed.stderr and b"Traceback" not in closed.stderr
    reader, writer = os.pipe()
    os.close(reader)  # `gsmlp eval ... | head -0`
    try:
        piped = run_gsmlp([*EVAL, "--report", str(report)], ws, stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    assert piped.returncode == 0 and b"output pipe was closed" in piped.stderr, piped.stderr
    # A command whose output is what it prints has failed when nobody can read it.
    info = run_gsmlp(["info", "--model", "model"], ws, preexec_fn=_close_stdout)
    assert info.returncode == 1 and b"stdout was closed" in info.stderr


def test_names_that_are_not_utf8_are_written_and_printed_as_they_are(ws: Path, tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    onnx = folder + b"/g\xff.onnx"
    shutil.copyfile(ws / "gated.onnx", onnx)
    report = folder + b"/caf\xe9.json"
    argv = [*VALIDATE[:-1], onnx, "--report", report]
    result = run_gsmlp(argv, ws)
    assert result.returncode == 0, result.stderr
    assert b"report: " + report in result.stdout and b"Traceback" not in result.stderr
    for name in (b"caf\xe9.json", b"caf\xe9.md", b"caf\xe9_ap.png", b"caf\xe9_sparsity.png"):
        assert os.path.isfile(folder + b"/" + name), name
    assert b"g\xff.onnx" in Path(os.fsdecode(folder + b"/caf\xe9.md")).read_bytes()


def test_an_input_replaced_during_the_run_stops_publishing(ws: Path, tmp_path: Path) -> None:
    """The re-export race: validate started on gated.onnx, which another process then replaces. The run
    reads the file once, and refuses to publish a report of a file that is no longer the one at its path."""
    onnx = tmp_path / "gated.onnx"
    shutil.copyfile(ws / "gated.onnx", onnx)
    report = tmp_path / "r.json"
    argv = [*VALIDATE[:-1], str(onnx), "--report", str(report)]
    process = gsmlp_process(argv, ws, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / ".r.json.lock").exists(), process)  # its inputs are recorded
        replacement = tmp_path / ".new.onnx"
        shutil.copyfile(ws / "dense.onnx", replacement)
        os.replace(replacement, onnx)  # how `gsmlp export` publishes
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 1, err
    assert b"--onnx" in err and b"changed while gsmlp was running" in err and b"r.json was not written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gated.onnx"]
