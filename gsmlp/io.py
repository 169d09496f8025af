"""Atomic output: a reader sees the old file or the whole new one, never half of it.

Temporary files and folders are named `.NAME.*.tmp` beside their target (TEMPORARY_FORMS) and are removed on
every way out that Python sees (an error, Ctrl-C, a signal turned into an exception by gsmlp.signals); what
an uncatchable stop leaves is removed by the next run onto the same output (gsmlp.locks). The steps that
publish or clean up run with those signals held back, so that a stop request cannot split them in two.
An existing folder is replaced only when it holds an earlier output of the same kind (see OutputKind). A set
of files that belong together (a report and its plots) is published as one (atomic_file_set). Before
anything is published, the command's inputs are checked to be unchanged since it started (gsmlp.watch).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsmlp import watch
from gsmlp.errors import GsmlpError
from gsmlp.signals import signals_held

# The temporary names of an output NAME: `.NAME.XXXXXXXX.tmp` (the file or folder being written), with
# "old-" the earlier folder being swapped out, with "set-" the staging folder of a file set. XXXXXXXX is
# tempfile's random part. The longest adds TEMPORARY_EXTRA bytes to NAME: a name must leave room for it.
TEMPORARY_TAGS = ("", "old-", "set-")
RANDOM_PART = 8
TEMPORARY_EXTRA = len("..old-") + RANDOM_PART + len(".tmp")
_TEMPORARY = re.compile(rf"\.(?P<name>.+)\.(?:old-|set-)?[a-z0-9_]{{{RANDOM_PART}}}\.tmp")


@dataclass(frozen=True)
class OutputKind:
    """What an earlier output of one gsmlp command looks like: only such an output is replaced unasked."""

    description: str  # "a checkpoint folder written by gsmlp calibrate": says what would be replaced
    recognise: Callable[[Path], bool]  # True when the existing path is an earlier output of this kind
    companion: bool = False  # written beside a main output, with it (REPORT.md): the main one is locked


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc/self/status)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _publish_mode(path: Path, umask: int) -> None:
    """Temporary files and folders are private (0600/0700); a published output follows the umask."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _make_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise GsmlpError(f"cannot write {path}: {parent} is a file, not a folder") from None
    except OSError as exc:
        raise GsmlpError(f"cannot create the folder {parent} for {path.name}: {exc.strerror}") from None
    if not parent.is_dir():
        raise GsmlpError(f"cannot write {path}: {parent} is a file, not a folder")


def temporary_of(path: Path) -> str | None:
    """The output NAME whose temporary `path` is (`.NAME.*.tmp`, see TEMPORARY_TAGS), else None."""
    match = _TEMPORARY.fullmatch(path.name)
    return match.group("name") if match else None


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is, or lies inside, one of gsmlp's temporary files or folders."""
    return any(temporary_of(Path(part)) for part in Path(path).parts)


def shown_path(path: str | os.PathLike[str]) -> Path:
    """`path` as the user will find it once published: each temporary folder on the way named as its
    output (`.out.x1y2z3w4.tmp/a.json` -> `out/a.json`); gsmlp's temporary names mean nothing to a user."""
    return Path(*(temporary_of(Path(part)) or part for part in Path(path).parts))


def _write_error(target: Path, exc: OSError) -> GsmlpError:
    """Disk full, a quota, a file size limit, a vanished folder: named, with the file that failed, as the
    user's path (shown_path)."""
    named = exc.filename and shown_path(exc.filename) != shown_path(target)
    where = f"{shown_path(exc.filename)}: " if named else ""
    return GsmlpError(f"{shown_path(target)} was not written: {where}{exc.strerror or exc}")


def _check_inputs(target: Path) -> None:
    """Before publishing: the run's inputs are as it found them (a file inside a temporary folder is
    checked when that folder is published)."""
    if not is_temporary(target):
        watch.check_unchanged(target)


# What this run has published (atomic_path, atomic_directory, atomic_file_set), for the command line: once
# an output is in place, a closed stdout no longer fails the run (gsmlp.cli).
published: list[Path] = []


def _temporary(target: Path, tag: str = "", folder: bool = False) -> Path:
    """A new temporary file (or folder) for `target`, beside it, named as TEMPORARY_TAGS say."""
    make = tempfile.mkdtemp if folder else tempfile.mkstemp
    try:
        made = make(prefix=f".{target.name}.{tag}", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from None
    if isinstance(made, tuple):
        os.close(made[0])
        made = made[1]
    return Path(made)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A folder at `path` is never replaced by the file.
    """
    target = Path(path)
    if target.is_dir():
        raise GsmlpError(f"cannot write {target}: it is a folder, and gsmlp writes a file there")
    _make_parent(target)
    tmp = _temporary(target)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _write_error(target, exc) from None
        _check_inputs(target)
        with signals_held():
            try:
                _publish_mode(tmp, current_umask())
                os.replace(tmp, target)
            except OSError as exc:
                raise _write_error(target, exc) from None
            published.append(target)
    finally:
        with signals_held():
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    # A file name that is not UTF-8 (it reaches Python as surrogates) is written back as its own bytes.
    write_bytes_atomic(path, text.encode("utf-8", errors="surrogateescape"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """JSON as every reader takes it: a NaN or infinity is refused, naming where it sits, before writing."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:
        raise GsmlpError(
            f"{path} was not written: it would hold the non-finite number {_non_finite(obj)}, which JSON "
            "cannot carry"
        ) from None
    write_text_atomic(path, text + "\n")


def _non_finite(obj: Any, where: str = "") -> str:
    """'nan at metrics.AP': the first NaN or infinity in a JSON document."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{obj} at {where or 'the top'}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return ""


def folder_entries(path: Path) -> list[str]:
    """The names in a folder, sorted; empty for one that cannot be listed."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _same_layout(old: Path, new: Path) -> bool:
    """Every entry of `old` has a counterpart of the same name and kind in `new`: replacing `old` by `new`
    loses nothing that `new` does not write again, so `old` can only be an earlier version of it."""
    for name in folder_entries(old):
        counterpart = new / name
        if not counterpart.exists() or counterpart.is_dir() != (old / name).is_dir():
            return False
    return True


def replaceable_folder(path: Path, kind: OutputKind | None, force: bool, new: Path | None = None) -> bool:
    """An existing folder may be replaced: empty, an earlier output of `kind`, or the user said --force.

    With no kind, the folder about to be published (`new`) says what an earlier version looks like.
    """
    if force or not folder_entries(path):
        return True
    if kind is not None:
        return kind.recognise(path)
    return new is not None and _same_layout(path, new)


def foreign_folder_error(path: Path, kind: OutputKind | None, option: str = "") -> GsmlpError:
    names = folder_entries(path)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    what = kind.description if kind else "the output being written"
    where = f"{option} {path}" if option else str(path)
    return GsmlpError(
        f"{where} already holds {shown}, which is not {what}; gsmlp replaces a folder only when it holds "
        "an earlier output of the same command: choose another folder, or pass --force to replace it"
    )


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the new folder at `target` and remove the old one; on failure the old one stays."""
    old = _temporary(target, "old-", folder=True)
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], kind: OutputKind | None = None, force: bool = False
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds.

    An existing folder is replaced whole (a re-run never leaves a mix of old and new files), and only when
    `replaceable_folder` allows it; a file at `path` is never replaced by a folder.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise GsmlpError(
            f"cannot write the folder {target}: a file is there, and gsmlp never replaces a file with a "
            "folder; remove it or choose another path"
        )
    _make_parent(target)
    tmp = _temporary(target, folder=True)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _write_error(target, exc) from None
        _check_inputs(target)
        with signals_held():
            _publish_folder(tmp, target, kind, force)
            published.append(target)
    finally:
        with signals_held():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish_folder(tmp: Path, target: Path, kind: OutputKind | None, force: bool) -> None:
    umask = current_umask()
    for folder, dirs, files in os.walk(tmp):
        for name in dirs + files:
            _publish_mode(Path(folder) / name, umask)
    _publish_mode(tmp, umask)
    try:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise GsmlpError(
                f"cannot write the folder {target}: a file or link is there now, and gsmlp never replaces "
                "a file with a folder"
            )
        if not target.exists():
            os.replace(tmp, target)
        elif replaceable_folder(target, kind, force, new=tmp):
            _swap_in(tmp, target)
        else:
            raise foreign_folder_error(target, kind)
    except OSError as exc:
        raise _write_error(target, exc) from None


@contextlib.contextmanager
def atomic_file_set(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Stage a set of files that belong together (a report, its Markdown, its plots); publish all or none.

    `paths`: the set, in one folder, its main file first. Yields where to write each (same names, in one
    staging folder `.MAIN.set-*.tmp` beside them). If the block succeeds, every staged file replaces its
    path, the main file last, and a file of the set that was not written this time is removed: no file of an
    earlier set is left mixed in. If a step fails, the earlier set is put back as it was.
    """
    targets = [Path(p) for p in paths]
    if len({t.parent for t in targets}) != 1:
        raise ValueError(f"a file set lives in one folder: {', '.join(map(str, targets))}")
    main = targets[0]
    for target in targets:
        if target.is_dir():
            raise GsmlpError(f"cannot write {target}: it is a folder, and gsmlp writes a file there")
    _make_parent(main)
    staging = _temporary(main, "set-", folder=True)
    try:
        try:
            yield [staging / target.name for target in targets]
        except OSError as exc:
            raise _write_error(main, exc) from None
        _check_inputs(main)
        with signals_held():
            _publish_set(staging, [*targets[1:], main])
            published.append(main)
    finally:
        with signals_held():
            shutil.rmtree(staging, ignore_errors=True)


def _publish_set(staging: Path, targets: list[Path]) -> None:
    """Back up the earlier set (hard links: no reader ever finds a file missing), put the new one in place,
    drop the members not written; on any failure, restore the earlier set."""
    for target in targets:  # checked again now: someone may have put a folder there since the run began
        if os.path.lexists(target) and (target.is_dir() or not (target.is_file() or target.is_symlink())):
            raise GsmlpError(
                f"{shown_path(target)} was not written: something that is not a file is there now, and gsmlp "
                "replaces only files; no file of the set was changed"
            )
    umask = current_umask()
    backups = staging / ".earlier"
    backups.mkdir()
    done: list[Path] = []
    try:
        for target in targets:
            if os.path.lexists(target):
                try:
                    os.link(target, backups / target.name, follow_symlinks=False)
                except OSError:  # a file system without hard links: move it aside instead
                    os.replace(target, backups / target.name)
        for target in targets:
            staged = staging / target.name
            done.append(target)
            if staged.exists():
                _publish_mode(staged, umask)
                os.replace(staged, target)
            elif os.path.lexists(target):
                target.unlink()
    except OSError as exc:
        for target in targets:
            saved = backups / target.name
            with contextlib.suppress(OSError):
                if os.path.lexists(saved):
                    os.replace(saved, target)
                elif target in done:
                    target.unlink(missing_ok=True)
        raise _write_error(targets[-1], exc) from None
