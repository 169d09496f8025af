"""A run's inputs, checked to be the same files when it publishes as when it started.

A command reads each input file once, but a run takes minutes: a file replaced or rewritten meanwhile (a
re-export, a re-calibration into the same folder) would mix two versions in one result. OutputPlan.check()
records every input's fingerprint before the work starts; each publishing step of gsmlp.io, and the end of a
command that publishes nothing, compares them again and refuses, naming the input, when one changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gsmlp.errors import GsmlpError

# device, inode, size, modification and change time (ns): a rewrite changes the times, a replacement the
# inode. A folder is watched through the files in it (and its own device and inode: a swapped-in folder).
Fingerprint = tuple[int, ...]
MAX_FILES = 200_000  # beyond this many files in one input folder, only the first ones are watched

_watched: list[tuple[str, Path, dict[Path, Fingerprint]]] = []  # (option, path, {file: fingerprint})


def _fingerprint(path: Path, folder: bool = False) -> Fingerprint | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    if folder:
        return (found.st_dev, found.st_ino)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _files(path: Path) -> dict[Path, Fingerprint]:
    if not path.is_dir():
        printed = _fingerprint(path)
        return {path: printed} if printed else {}
    found = {path: _fingerprint(path, folder=True)}
    for folder, _, names in os.walk(path):
        for name in names:
            if len(found) > MAX_FILES:
                return found
            file = Path(folder) / name
            printed = _fingerprint(file)
            if printed is not None:
                found[file] = printed
    return found


def watch_inputs(inputs: Iterable[tuple[str, Path]]) -> None:
    """Record what each (option, path) holds now; paths that do not exist yet are not inputs to watch."""
    for option, path in inputs:
        if os.path.exists(path) and not any(path == watched for _, watched, _ in _watched):
            _watched.append((option, path, _files(path)))


def changed_input() -> str | None:
    """'--onnx gated.onnx (gated.onnx was replaced)' for the first watched input that changed, else None."""
    for option, path, files in _watched:
        for file, printed in files.items():
            now = _fingerprint(file, folder=file == path and path.is_dir())
            if now != printed:
                what = "removed" if now is None else "replaced" if now[:2] != printed[:2] else "rewritten"
                inner = f"{file} was {what}" if file != path else f"it was {what}"
                return f"{option} {path} ({inner})"
    return None


def check_unchanged(output: Path | None = None) -> None:
    """Refuse to publish `output` (None: to report at all) when an input changed since the run started."""
    changed = changed_input()
    if changed is None:
        return
    outcome = f"{output} was not written" if output is not None else "the results may mix two versions"
    raise GsmlpError(
        f"the input {changed} changed while gsmlp was running; {outcome}: run the command again once the "
        "input is complete"
    )


def forget() -> None:
    """The run is over: stop watching its inputs."""
    _watched.clear()
