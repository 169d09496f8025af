"""The demo's summary: one row per backend and mode, taken from validate reports, and its text table."""

from __future__ import annotations

from collections.abc import Mapping

from gsmlp.text_table import align


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def table_rows(reports: Mapping[str, dict]) -> list[dict]:
    """reports: mode (dense, gated) -> a `gsmlp validate` report. One row per (backend, mode).

    Sparsity and MAC ratio are PyTorch's measurements; the exported graphs compute the same gates, so the
    other backends' rows repeat them (None where the row's backend or PyTorch did not run).
    """
    rows = []
    for mode, report in reports.items():
        reference = report["backends"].get(report.get("reference", "pytorch"), {})
        sparsity = reference.get("ffn_sparsity") or {}
        macs = reference.get("ffn_macs") or {}
        for backend, entry in report["backends"].items():
            parity = report["parity"].get(backend)
            metrics = entry.get("metrics") or {}
            latency = entry.get("latency_ms") or {}
            if backend == report.get("reference", "pytorch"):
                verdict = "reference" if entry["status"] == "ok" else entry["status"]
            elif parity is not None:
                verdict = "pass" if parity["pass"] else "FAIL"
            else:
                verdict = entry["status"]
            ran = entry["status"] == "ok"
            rows.append(
                {
                    "backend": backend,
                    "mode": mode,
                    "status": entry["status"],
                    "reason": entry.get("reason", ""),
                    "AP": _round(metrics.get("AP"), 2),
                    "ffn_sparsity": _round(sparsity.get("encoder"), 3) if ran and sparsity else None,
                    "decoder_ffn_sparsity": _round(sparsity.get("decoder"), 3) if ran and sparsity else None,
                    "ffn_mac_ratio": _round(macs.get("ffn_mac_ratio"), 3) if ran and macs else None,
                    "latency_median_ms": _round(latency.get("median"), 1),
                    "latency_p90_ms": _round(latency.get("p90"), 1),
                    "parity": verdict,
                    "implementation": entry.get("implementation") if ran else None,
                    "delta_AP": _round(parity["delta_AP"], 3)
                    if parity and parity["delta_AP"] is not None
                    else None,
                }
            )
    return rows


COLUMNS = (
    ("backend", "backend", "{}"),
    ("mode", "mode", "{}"),
    ("AP", "AP", "{:.2f}"),
    ("ffn_sparsity", "enc sparsity", "{:.3f}"),
    ("decoder_ffn_sparsity", "dec sparsity", "{:.3f}"),
    ("ffn_mac_ratio", "FFN MAC ratio", "{:.3f}"),
    ("latency_median_ms", "lat med ms", "{:.1f}"),
    ("latency_p90_ms", "lat p90 ms", "{:.1f}"),
    ("parity", "parity", "{}"),
    ("implementation", "GatedSparseMLP ran on", "{}"),
)


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table; '-' where a value was not measured; skipped/failed rows give their reason."""
    cells = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        cells.append(["-" if row[key] is None else fmt.format(row[key]) for key, _, fmt in COLUMNS])
    lines, widths = align(cells)
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = sorted(
        {f"{row['backend']} {row['status']}: {row['reason']}" for row in rows if row["status"] != "ok"}
    )
    return "\n".join(lines + notes)


def failures(report: dict) -> list[str]:
    """Why a validate report did not pass, one clause per failed backend or parity check."""
    found = [f"{name} failed: {entry['reason']}" for name, entry in report["backends"].items()
             if entry["status"] == "failed"]  # fmt: skip
    for name, entry in report["parity"].items():
        if not entry["pass"]:
            tolerance = entry["tolerance"]
            found.append(
                f"{name} parity FAIL (max_scaled_diff {entry['max_scaled_diff']:.3g} (max_abs_diff "
                f"{entry['max_abs_diff']:.3g}), bound {tolerance['max_abs_diff']}; "
                f"delta_AP {entry['delta_AP']}, bound {tolerance['delta_ap']})"
            )
    if not found and not report["pass"] and report.get("reason"):
        found.append(report["reason"])
    return found
