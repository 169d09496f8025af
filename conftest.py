"""Lets the test suite run against a plain (non-editable) install as well as an editable one.

pytest puts the repository root first on sys.path (tests/ is a package). There, the source folder gsmlp/
holds the command line and the shared helpers but not the stage folders that the install maps into the
package (model/ -> gsmlp.model, ...) nor the compiled libraries, so a plain install would be shadowed by a
package without them. An editable install resolves `gsmlp` through its own import hook and is unaffected.
The root moves to the end of sys.path: `tests` still imports from it, `gsmlp` comes from the install.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)


def _installed_elsewhere() -> bool:
    """A gsmlp outside this checkout's gsmlp/ folder (a plain install), seen without the root on sys.path."""
    others = [entry for entry in sys.path if entry not in ("", ROOT)]
    spec = importlib.machinery.PathFinder.find_spec("gsmlp", others)
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    return origin is not None and Path(ROOT) not in origin.parents


if _installed_elsewhere():
    while ROOT in sys.path:
        sys.path.remove(ROOT)
    sys.path.append(ROOT)
