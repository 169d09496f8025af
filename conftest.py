"""Lets the test suite run against a plain (non-editable) install as well as an editable one.

pytest puts the repository root first on sys.path (tests/ is a package). There, the source folder gsmlp/
holds the command line and the shared helpers but not the stage folders that the install maps into the
package (model/ -> gsmlp.model, ...) nor the compiled libraries, so a plain install would be shadowed by a
package without them. An editable install resolves `gsmlp` through its own import hook and is unaffected.
The root moves to the end of sys.path: `tests` still imports from it, `gsmlp` comes from the install.
pyproject.toml sets --import-mode=append, so that pytest does not put the root first again.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE_PACKAGE = ROOT / "gsmlp"


def _is_root(entry: str) -> bool:
    """A sys.path entry that names the checkout's root ("" is the working directory)."""
    return Path(entry or ".").resolve() == ROOT


def _installed_elsewhere() -> bool:
    """A gsmlp other than this checkout's source folder (a plain install), looked up past the root."""
    others = [entry for entry in sys.path if not _is_root(entry)]
    spec = importlib.machinery.PathFinder.find_spec("gsmlp", others)
    if spec is None or spec.origin is None:
        return False  # an editable install: its import hook, not sys.path, finds gsmlp
    return Path(spec.origin).resolve().parent != SOURCE_PACKAGE


if _installed_elsewhere():
    sys.path[:] = [entry for entry in sys.path if not _is_root(entry)] + [str(ROOT)]
    # The tests' own `python -m gsmlp` and `python -c` children would put their working directory (often the
    # root) first again; Python 3.11's safe-path mode keeps it off their sys.path.
    os.environ["PYTHONSAFEPATH"] = "1"
