"""PNG figures for the reports, set up one way: the Agg backend (no display needed), tight layout, written
atomically, the figure closed even when drawing fails (pyplot keeps every open figure alive)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gsmlp.io import atomic_path


@contextlib.contextmanager
def png_figure(
    path: str | Path, *, columns: int = 1, size: tuple[float, float] = (7, 4), dpi: int = 100
) -> Iterator[Any]:
    """Yields the axes (one, or a tuple of `columns`) of a new figure; on exit saves it as PNG at `path`."""
    # Imported here: matplotlib takes a second to import, and only the report writers need it.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=size)
    try:
        yield axes
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(figure)
