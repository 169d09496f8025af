"""Atomic outputs: a failed write leaves the old file or folder untouched and no temporary behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory, write_json_atomic, write_text_atomic


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_json_atomic(target, {"pass": True})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"bad": float("nan")})  # allow_nan=False refuses before anything lands
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
