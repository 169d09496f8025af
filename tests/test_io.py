"""Atomic outputs: a failed write leaves the old file or folder untouched and no temporary behind; only an
earlier output is replaced; modes follow the umask; a stop signal never splits a publishing step."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory, write_json_atomic, write_text_atomic
from gsmlp.paths import folder_output
from gsmlp.signals import Stopped, signals_held, stop_signals_raise


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_json_atomic(target, {"pass": True})
    with pytest.raises(GsmlpError, match="report.json was not written: .*nan at bad.x"):
        write_json_atomic(target, {"bad": {"x": float("nan")}})  # refused before anything lands
    assert target.read_text() == '{\n  "pass": true\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_failed_directory_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("new, half-written")
        raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_published_directory_has_the_umask_mode(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_unwritable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(GsmlpError, match="cannot create the folder .*file"):
        write_text_atomic(blocker / "sub" / "out.txt", "x")


def test_a_folder_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "thesis.txt").write_text("mine")
    with pytest.raises(GsmlpError, match=r"already holds thesis\.txt"), atomic_directory(target) as tmp:
        (tmp / "report.json").write_text("{}")
    assert (target / "thesis.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_recognised_earlier_output_or_force_is_replaced(tmp_path: Path) -> None:
    kind = folder_output("an earlier test output", required=["a.json"], allowed=["b.png"])
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.json").write_text("old")
    (target / "b.png").write_text("old")
    with atomic_directory(target, kind) as tmp:
        (tmp / "a.json").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    (target / "mine.txt").write_text("mine")
    with atomic_directory(target, kind, force=True) as tmp:
        (tmp / "a.json").write_text("newer")
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_is_never_replaced_by_a_folder_nor_a_folder_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    with pytest.raises(GsmlpError, match="never replaces a file with a folder"):
        with atomic_directory(tmp_path / "file", force=True):
            pass
    (tmp_path / "folder").mkdir()
    with pytest.raises(GsmlpError, match="it is a folder"):
        write_text_atomic(tmp_path / "folder", "x")
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "folder").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_have_the_umask_mode(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_stop_signal_waits_for_the_step_that_must_not_be_split() -> None:
    reached = False
    with stop_signals_raise():
        assert signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL  # never kill the test run itself
        with pytest.raises(Stopped), signals_held():
            os.kill(os.getpid(), signal.SIGUSR1)
            sum(range(1000))  # the handler has run by now, and only noted the signal
            reached = True
    assert reached
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
