"""The paths a command reads and writes, checked before any work starts.

Inputs: a file where a file is meant and a folder where a folder is meant, each named with its option.
Outputs (OutputPlan): never one of the command's inputs nor a folder holding one, never a folder where a
file is meant nor the reverse, writable, and replacing only an earlier output of the same command unless
the user passes --force. The writers in gsmlp.io then publish each output atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gsmlp.errors import GsmlpError
from gsmlp.io import OutputKind, folder_entries, foreign_folder_error, replaceable_folder

PathLike = str | os.PathLike[str]
# A JSON report larger than this is not one gsmlp wrote: recognising it must not read a huge file.
MAX_REPORT_BYTES = 256 << 20


def require_file(path: PathLike, what: str, *, must_exist: bool = True) -> Path:
    """`path` as a readable file, or an error that says what is there instead. `what`: "--onnx".

    must_exist=False: an absent file is left to the caller (a backend that may be skipped on this machine).
    """
    path = Path(path)
    if path.is_dir():
        raise GsmlpError(f"{what} {path} is a folder; give a file")
    if not path.exists():
        if not must_exist:
            return path
        raise GsmlpError(f"{what} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise GsmlpError(f"{what} {path} cannot be read: permission denied")
    return path


def require_folder(path: PathLike, what: str) -> Path:
    """`path` as a readable folder, or an error that says what is there instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GsmlpError(f"{what} {path} is a file, not a folder; give a folder")
    if not path.exists():
        raise GsmlpError(f"{what} {path}: no such folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise GsmlpError(f"{what} {path} cannot be read: permission denied")
    return path


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
        f"a companion of {kind.description} (none is at {main})", lambda _: kind.recognise(main)
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
        """Refuse, with the option at fault, any output that would destroy an input or foreign files.

        inputs: option -> the path(s) it reads (None: not given). Built-in names are resolved by the caller.
        """
        named = [(option, Path(p)) for option, value in inputs.items() for p in _as_list(value)]
        for output in self.outputs:
            _check_not_an_input(output, named)
            _check_kind_and_owner(output, self.force)
            _check_writable(output)
        _check_distinct(self.outputs)


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


def _check_writable(output: PlannedOutput) -> None:
    """Write a probe file where the output will go (root ignores permission bits, so only trying tells)."""
    where = f"{output.option} {output.path}"
    existing = _nearest_existing(output.path.parent)
    if not existing.is_dir():
        raise GsmlpError(f"cannot write {where}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gsmlp-probe.", suffix=".tmp", dir=existing)
    except OSError as exc:
        raise GsmlpError(f"cannot write {where}: {existing} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _check_distinct(outputs: list[PlannedOutput]) -> None:
    for i, first in enumerate(outputs):
        for second in outputs[i + 1 :]:
            a, b = _resolved(first.path), _resolved(second.path)
            if _contains(a, b) or _contains(b, a):
                raise GsmlpError(
                    f"{first.option} {first.path} and {second.option} {second.path} would overwrite each "
                    "other; give them different paths"
                )
