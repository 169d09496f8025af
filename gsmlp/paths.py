"""The paths a command reads and writes, checked before any work starts.

Inputs: a file where a file is meant and a folder where a folder is meant, each named with its option.
Outputs (OutputPlan): never one of the command's inputs nor a folder holding one, never a folder where a
file is meant nor the reverse, writable, and replacing only an earlier output of the same command unless
the user passes --force. The writers in gsmlp.io then publish each output atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from gsmlp import locks, watch
from gsmlp.errors import GsmlpError
from gsmlp.io import (
    TEMPORARY_EXTRA,
    OutputKind,
    folder_entries,
    foreign_folder_error,
    replaceable_folder,
)

PathLike = str | os.PathLike[str]
# A JSON report larger than this is not one gsmlp wrote: recognising it must not read a huge file.
MAX_REPORT_BYTES = 256 << 20


def kind_of(mode: int) -> str:
    """What a stat mode is, in words: "a folder", "a FIFO (named pipe)", "a character device", ..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "a file")


def _not_regular(path: Path, what: str, mode: int) -> GsmlpError:
    if stat.S_ISDIR(mode):
        return GsmlpError(f"{what} {path} is a folder; give a file")
    return GsmlpError(
        f"{what} {path} is {kind_of(mode)}, not a regular file; gsmlp reads only regular files (a pipe or "
        "a device could block the run or never end)"
    )


def require_file(path: PathLike, what: str, *, must_exist: bool = True) -> Path:
    """`path` as a readable regular file, or an error that says what is there instead. `what`: "--onnx".

    Symbolic links are followed. A FIFO, device or socket is refused before anything opens it (reading one
    could wait forever). must_exist=False: an absent file is left to the caller (a backend that may be
    skipped on this machine).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not must_exist:
            return path
        broken = " (a symbolic link to nothing)" if path.is_symlink() else ""
        raise GsmlpError(f"{what} {path}: no such file{broken}") from None
    except OSError as exc:
        raise GsmlpError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path, what, mode)
    if not os.access(path, os.R_OK):
        raise GsmlpError(f"{what} {path} cannot be read: permission denied")
    return path


@contextlib.contextmanager
def open_regular(path: PathLike, what: str) -> Iterator[BinaryIO]:
    """The file opened for reading, refused unless it is a regular file *as opened*: no pipe or device is
    ever waited on, even one put in its place after a check (O_NONBLOCK, then fstat)."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise GsmlpError(f"{what} {path} is a folder; give a file") from None
    except FileNotFoundError:
        raise GsmlpError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise GsmlpError(f"{what} {path} cannot be read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, what, mode)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as file:
        yield file


def read_regular_bytes(path: PathLike, what: str) -> bytes:
    """The whole content of a regular file, read once (see open_regular)."""
    with open_regular(path, what) as file:
        try:
            return file.read()
        except OSError as exc:
            raise GsmlpError(f"cannot read {what} {path}: {exc.strerror}") from None


# A library file starts with ELF's magic and says it is a shared object (ET_DYN) at byte 16, little-endian on
# every machine gsmlp builds for.
ELF_MAGIC = b"\x7fELF"
ELF_SHARED_OBJECT = 3


def require_library(path: PathLike, what: str) -> Path:
    """`path` as a loadable shared library: a regular file holding an ELF shared object; otherwise an error
    naming `what` (an option or environment variable) and the path, before any loader sees it."""
    path = require_file(path, what)
    if sys.platform != "linux":
        return path
    with open_regular(path, what) as file:
        header = file.read(18)
    if len(header) < 18 or header[:4] != ELF_MAGIC:
        raise GsmlpError(f"{what} {path} is not a shared library (it is not an ELF file)")
    if int.from_bytes(header[16:18], "little") != ELF_SHARED_OBJECT:
        raise GsmlpError(
            f"{what} {path} is an ELF file but not a shared library (an executable or an object file?)"
        )
    return path


def require_folder(path: PathLike, what: str) -> Path:
    """`path` as a readable folder, or an error that says what is there instead."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise GsmlpError(f"{what} {path}: no such folder") from None
    except OSError as exc:
        raise GsmlpError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise GsmlpError(f"{what} {path} is {kind_of(mode)}, not a folder; give a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise GsmlpError(f"{what} {path} cannot be read: permission denied")
    return path


def relative_name_problem(name: str) -> str | None:
    """Why `name` cannot name a file inside a folder (absolute, `..`, NUL), or None: a lexical check that a
    name from a data file (a COCO file_name) never reaches outside the folder the user gave."""
    if "\x00" in name:
        return "it holds a NUL character"
    pure = PurePosixPath(name)
    if pure.is_absolute():
        return "it is an absolute path"
    if ".." in pure.parts:
        return "it climbs out with '..'"
    return None


def escapes(folder: Path, path: Path) -> Path | None:
    """Where `path` really leads when that is outside `folder` (a symbolic link out of it), else None."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return None if _contains(base, real) else real


def folder_output(description: str, required: Iterable[str], allowed: Iterable[str]) -> OutputKind:
    """A folder output recognised by its names: every `required` one, and nothing beyond `allowed`."""
    required, allowed = frozenset(required), frozenset(allowed) | frozenset(required)

    def recognise(path: Path) -> bool:
        names = set(folder_entries(path))
        return path.is_dir() and required <= names <= allowed

    return OutputKind(description, recognise)


def json_output(description: str, keys: Iterable[str]) -> OutputKind:
    """A JSON report recognised by its top-level keys."""
    keys = frozenset(keys)

    def recognise(path: Path) -> bool:
        try:
            if not path.is_file() or path.stat().st_size > MAX_REPORT_BYTES:
                return False
            document = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(document, dict) and keys <= set(document)

    return OutputKind(description, recognise)


def companion_output(main: Path, kind: OutputKind) -> OutputKind:
    """A file written beside a main output (REPORT.md beside REPORT.json): it is an earlier output of the
    command exactly when the main output is."""
    return OutputKind(
        f"a companion of {kind.description} (none is at {main})",
        lambda _: kind.recognise(main),
        companion=True,
    )


@dataclass
class PlannedOutput:
    path: Path
    option: str  # "--report", or "--report (its markdown companion)"
    kind: OutputKind
    folder: bool
    raw: str


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


@dataclass
class OutputPlan:
    """Every path one run will write, checked together before the run does any work."""

    force: bool = False
    outputs: list[PlannedOutput] = field(default_factory=list)

    def file(self, path: PathLike, option: str, kind: OutputKind) -> Path:
        self.outputs.append(PlannedOutput(Path(path), option, kind, False, os.fspath(path)))
        return Path(path)

    def folder(self, path: PathLike, option: str, kind: OutputKind) -> Path:
        self.outputs.append(PlannedOutput(Path(path), option, kind, True, os.fspath(path)))
        return Path(path)

    def check(self, inputs: Mapping[str, PathLike | Iterable[PathLike] | None]) -> None:
        """Refuse, with the option at fault, any output that would destroy an input or foreign files, or
        whose name cannot be written; then lock the outputs for this run (gsmlp.locks: removing what a
        killed run left) and record the inputs, to be checked unchanged when the run publishes (gsmlp.watch).

        inputs: option -> the path(s) it reads (None: not given). Built-in names are resolved by the caller.
        """
        named = [(option, Path(p)) for option, value in inputs.items() for p in _as_list(value)]
        for output in self.outputs:
            _check_not_an_input(output, named)
            _check_kind_and_owner(output, self.force)
            _check_name_lengths(output)
            _check_writable(output)
        _check_distinct(self.outputs)
        try:
            for output in self.outputs:
                if output.kind.companion:
                    locks.remove_leftovers(output.path)  # its main output's lock covers it
                else:
                    locks.acquire(output.path, f"{output.option} {output.path}")
        except GsmlpError:
            locks.release_all()
            raise
        watch.watch_inputs(named)


def _as_list(value: PathLike | Iterable[PathLike] | None) -> list[PathLike]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    return [v for v in value if v is not None]


def _check_not_an_input(output: PlannedOutput, inputs: list[tuple[str, Path]]) -> None:
    out = _resolved(output.path)
    for option, path in inputs:
        given = _resolved(path)
        if _contains(out, given) or _same_file(output.path, path):
            relation = "is" if out == given or _same_file(output.path, path) else "holds"
            raise GsmlpError(
                f"{output.option} {output.path} {relation} the input {option} {path}; gsmlp never writes "
                "over what it reads: choose another output path"
            )
        if _contains(given, out) and os.path.lexists(out) and not output.kind.recognise(output.path):
            # An existing file inside an input folder (a model's config.json, an image) is part of it.
            raise GsmlpError(
                f"{output.option} {output.path} is inside the input {option} {path} and would replace "
                "one of its files; choose another output path"
            )


def _check_kind_and_owner(output: PlannedOutput, force: bool) -> None:
    path, where = output.path, f"{output.option} {output.path}"
    if not output.folder and output.raw.endswith(("/", os.sep)):
        raise GsmlpError(f"{where} names a folder (it ends with /); give a file path")
    if not os.path.lexists(path):
        return
    if output.folder:
        if path.is_symlink() or not path.is_dir():
            raise GsmlpError(
                f"{where} is a {'symbolic link' if path.is_symlink() else 'file'}; gsmlp writes a folder "
                "here and never replaces a file with a folder: remove it or choose another path"
            )
        if not replaceable_folder(path, output.kind, force):
            raise foreign_folder_error(path, output.kind, output.option)
        if force and not output.kind.recognise(path):
            _refuse_precious(path, where)
        return
    if path.is_dir():
        raise GsmlpError(f"{where} is a folder; gsmlp writes a file here: give a file path inside it")
    with contextlib.suppress(OSError):  # a link to nothing is replaced like a file
        if not stat.S_ISREG(mode := path.stat().st_mode):
            raise GsmlpError(
                f"{where} is {kind_of(mode)}; gsmlp replaces only regular files, even with --force: "
                "choose another path"
            )
    if not force and not output.kind.recognise(path):
        raise GsmlpError(
            f"{where} exists and is not {output.kind.description}; gsmlp replaces only its own earlier "
            "outputs: choose another path, or pass --force to replace it"
        )


def _refuse_precious(path: Path, where: str) -> None:
    """Even --force never replaces the root, the home folder, or a folder holding the working folder."""
    resolved = _resolved(path)
    if resolved == Path(resolved.anchor) or resolved == _resolved(Path.home()):
        raise GsmlpError(f"{where} is {'the root' if resolved == Path(resolved.anchor) else 'your home'} "
                         "folder; gsmlp never replaces it, even with --force")  # fmt: skip
    if _contains(resolved, _resolved(Path.cwd())):
        raise GsmlpError(f"{where} holds the current folder; gsmlp never replaces it, even with --force")


def _name_max(folder: Path) -> tuple[int, int]:
    """The longest file name and path this file system takes (255 and 4096 on Linux when it won't say)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _check_name_lengths(output: PlannedOutput) -> None:
    """Every name the run will create fits the file system, checked before the work: the output's own,
    its longest temporary and lock names (gsmlp.io, gsmlp.locks), and the folders still to be made."""
    where = f"{output.option} {output.path}"
    existing = _nearest_existing(output.path.parent)
    name_max, path_max = _name_max(existing if existing.is_dir() else existing.parent)
    extra = max(TEMPORARY_EXTRA, locks.LOCK_EXTRA)
    name = os.fsencode(output.path.name)
    if len(name) + extra > name_max:
        raise GsmlpError(
            f"{where}: the name {output.path.name!r} is {len(name)} bytes long; gsmlp writes it under a "
            f"temporary name first (.NAME.old-XXXXXXXX.tmp, {extra} bytes longer), and this file system "
            f"takes names of at most {name_max} bytes: choose a name of at most {name_max - extra} bytes"
        )
    for folder in [p for p in output.path.parents if not os.path.lexists(p)]:
        if len(os.fsencode(folder.name)) > name_max:
            raise GsmlpError(
                f"{where}: the folder name {folder.name!r} is longer than the {name_max} bytes this file "
                "system takes"
            )
    full = len(os.fsencode(os.path.abspath(output.path))) + extra
    if full >= path_max:
        raise GsmlpError(
            f"{where}: the path is {full - extra} bytes long, and with gsmlp's temporary name it would pass "
            f"the {path_max} bytes this system takes for a path: choose a shorter one"
        )


def _check_writable(output: PlannedOutput) -> None:
    """Write a probe file where the output will go (root ignores permission bits, so only trying tells).
    It is named as the output's own temporaries are (a killed probe is removed with them, gsmlp.locks)."""
    where = f"{output.option} {output.path}"
    existing = _nearest_existing(output.path.parent)
    if not existing.is_dir():
        raise GsmlpError(f"cannot write {where}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{output.path.name}.old-", suffix=".tmp", dir=existing)
    except OSError as exc:
        raise GsmlpError(f"cannot write {where}: {existing} is not writable ({exc.strerror})") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def _check_distinct(outputs: list[PlannedOutput]) -> None:
    for i, first in enumerate(outputs):
        for second in outputs[i + 1 :]:
            a, b = _resolved(first.path), _resolved(second.path)
            if _contains(a, b) or _contains(b, a):
                raise GsmlpError(
                    f"{first.option} {first.path} and {second.option} {second.path} would overwrite each "
                    "other; give them different paths"
                )
