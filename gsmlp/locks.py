"""One run per output at a time, and what a killed run left behind removed.

Before the work, OutputPlan.check() locks each output: the file `.NAME.lock` beside it, held with flock(2)
until the command ends (the kernel drops the lock however the process ends, SIGKILL included). A second run
onto the same output finds it held and is refused, naming the run that holds it. Holding the lock, a run
removes the temporaries (`.NAME.*.tmp`, gsmlp.io) that a run stopped by SIGKILL or a power loss left: no
live run can own them, since it would hold the lock. The lock file goes when the command ends.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gsmlp.distributed import is_rank_zero
from gsmlp.errors import GsmlpError
from gsmlp.io import folder_entries, temporary_of

LOCK_SUFFIX = ".lock"
LOCK_EXTRA = len(".") + len(LOCK_SUFFIX)  # bytes a lock's name adds to the output's
_MARK = "gsmlp-lock"
# What the lock record names as the holder: set by the command line to the command being run.
command_line = "gsmlp"


@dataclass
class _Lock:
    path: Path
    fd: int
    created: list[Path] = field(default_factory=list)  # folders made to hold it, removed if left empty


_held: list[_Lock] = []


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)][::-1]
    for path in missing:
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise GsmlpError(f"cannot create the folder {path}: {exc.strerror}") from None
    return missing


def _record(fd: int) -> dict | None:
    """The lock record in an open lock file; {} when empty, None when the file is not a gsmlp lock."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16)
    if not text.strip():
        return {}
    with contextlib.suppress(ValueError):
        record = json.loads(text)
        if isinstance(record, dict) and record.get(_MARK) == 1:
            return record
    return None


def _holder(record: dict | None) -> str:
    if not record:
        return "another gsmlp run"
    return (
        f"another gsmlp run (pid {record.get('pid')}, started {record.get('started')}: "
        f"`{record.get('command')}`)"
    )


def _open_locked(path: Path, where: str) -> int:
    """An open descriptor of the lock file at `path`, locked; refused when another run holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise GsmlpError(f"cannot lock {where}: {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(_record(fd))
            os.close(fd)
            raise GsmlpError(
                f"{where} is being written by {holder}; gsmlp lets one run at a time write an output: wait "
                "for that run to end, or choose another path"
            ) from None
        # The previous holder removes the file as it ends: a lock on a removed file locks nothing.
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino:
                return fd
        os.close(fd)


def acquire(target: Path, where: str) -> None:
    """Lock `target` for this run (refused, naming the holder, when another run has it), then remove the
    temporaries an earlier, killed run left beside it. `where`: "--report r.json", for messages.

    Under torchrun only rank 0 writes the outputs, so only it locks them: the other ranks of the same run
    would otherwise be refused as a second run onto the same output."""
    if not is_rank_zero():
        return
    created = _make_folders(target.parent)
    path = lock_path(target)
    try:
        fd = _open_locked(path, where)
    except GsmlpError:
        _remove_empty(created)
        raise
    record = _record(fd)
    if record is None:
        os.close(fd)
        _remove_empty(created)
        raise GsmlpError(
            f"{where}: {path} is in the way: gsmlp keeps its lock for this output there, and that file is "
            "not one; move it away"
        )
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    text = json.dumps({_MARK: 1, "pid": os.getpid(), "started": started, "command": command_line})
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8", errors="surrogateescape"), 0)
    _held.append(_Lock(path, fd, created))
    remove_leftovers(target)


def remove_leftovers(target: Path) -> list[Path]:
    """Remove the temporaries of `target` (`.NAME.*.tmp`) from its folder; call it holding the lock."""
    removed = []
    for name in folder_entries(target.parent):
        entry = target.parent / name
        if temporary_of(entry) != target.name:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: an output was written into it, or someone else's file


def release_all() -> None:
    """Drop every lock this run holds (the files removed while still locked), innermost first."""
    while _held:
        lock = _held.pop()
        with contextlib.suppress(OSError):
            lock.path.unlink()
        os.close(lock.fd)
        _remove_empty(lock.created)
