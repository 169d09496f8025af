"""Fixed-width text tables for the terminal and the Markdown reports: one alignment rule for every table."""

from __future__ import annotations

from collections.abc import Sequence


def align(rows: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    """Each row's cells left-aligned in columns two spaces apart (padding kept), and the column widths."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return lines, widths
