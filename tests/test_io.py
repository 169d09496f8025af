"""Atomic outputs: a failed write leaves the old file or folder untouched and no temporary behind; only an
earlier output is replaced; modes follow the umask; a stop signal never splits a publishing step."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from gsmlp import locks
from gsmlp.errors import GsmlpError
from gsmlp.io import (
    atomic_directory,
    atomic_file_set,
    shown_path,
    temporary_of,
    write_json_atomic,
    write_text_atomic,
)
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


# --- issue 27: file sets, temporary names, locks ---------------------------------------------------------


def test_a_file_set_replaces_the_earlier_set_whole(tmp_path: Path) -> None:
    """A member not written this time goes: no plot of an earlier report is left beside a new one."""
    paths = [tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r_sparsity.png"]
    with atomic_file_set(paths) as staged:
        for path in staged:
            path.write_text("old")
    with atomic_file_set(paths) as (main, markdown, _):
        main.write_text("new")
        markdown.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]
    assert (tmp_path / "r.json").read_text() == (tmp_path / "r.md").read_text() == "new"


def test_a_failed_file_set_publishes_nothing(tmp_path: Path) -> None:
    paths = [tmp_path / "r.json", tmp_path / "r.md"]
    with atomic_file_set(paths) as staged:
        for path in staged:
            path.write_text("old")
    with pytest.raises(RuntimeError), atomic_file_set(paths) as (main, _):
        main.write_text("new")
        raise RuntimeError("the plot failed")
    assert [(tmp_path / n).read_text() for n in ("r.json", "r.md")] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]


def test_a_folder_put_in_a_file_sets_way_is_never_replaced(tmp_path: Path) -> None:
    """A folder appears where a member goes while the run works: nothing of the set changes, the folder
    stays as it is."""
    paths = [tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"]
    with atomic_file_set(paths) as staged:
        for path in staged[:2]:
            path.write_text("old")
    with pytest.raises(GsmlpError, match="r.png was not written"), atomic_file_set(paths) as staged:
        for path in staged:
            path.write_text("new")
        (tmp_path / "r.png").mkdir()  # in the way of the last member's rename
        (tmp_path / "r.png" / "x").write_text("someone's")
    assert [(tmp_path / n).read_text() for n in ("r.json", "r.md")] == ["old", "old"]
    assert (tmp_path / "r.png" / "x").read_text() == "someone's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md", "r.png"]


def test_errors_name_the_users_path_never_a_temporary(tmp_path: Path) -> None:
    inner = tmp_path / ".out.ab12cd34.tmp" / "statistics.safetensors"
    assert shown_path(inner) == tmp_path / "out" / "statistics.safetensors"
    assert temporary_of(Path(".r.json.set-a1b2c3d4.tmp")) == "r.json"
    assert temporary_of(Path(".r.json.lock")) is None and temporary_of(Path(".r.json.tmp")) is None


def test_a_lock_refuses_a_second_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    target = tmp_path / "new" / "r.json"
    locks.acquire(target, "--report r.json")
    try:
        assert (tmp_path / "new" / ".r.json.lock").is_file()
        with pytest.raises(GsmlpError, match=rf"being written by another gsmlp run \(pid {os.getpid()}"):
            locks._open_locked(locks.lock_path(target), "--report r.json")
    finally:
        locks.release_all()
    assert not (tmp_path / "new").exists()  # the folder made to hold the lock went with it


def test_a_foreign_file_at_the_lock_name_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / ".r.json.lock").write_text("my notes\n")
    with pytest.raises(GsmlpError, match="is in the way"):
        locks.acquire(tmp_path / "r.json", "--report r.json")
    assert (tmp_path / ".r.json.lock").read_text() == "my notes\n"
