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
                    "precision_ratio": _worst_ratios(parity),
                }
            )
    return rows


def _worst_ratios(parity: dict | None) -> str | None:
    """The largest error/floor ratio over the outputs, at the quantile and the maximum: "1.24/1.76"."""
    outputs = ((parity or {}).get("precision") or {}).get("outputs")
    if not outputs:
        return None
    worst_quantile = max(entry["ratio_quantile"] for entry in outputs.values())
    return f"{worst_quantile:.2f}/{max(entry['ratio_max'] for entry in outputs.values()):.2f}"


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
    ("precision_ratio", "fp64 error/floor q/max", "{}"),
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


def precision_line(precision: dict, tolerance: dict) -> str:
    """One line per backend: each output's error against fp64 over PyTorch's floor, at the quantile and the
    maximum, against the factors: what a failure is short by, and where."""
    quantile = f"q{precision['quantile'] * 100:g}"
    cells = [
        f"{name} {quantile} x{entry['ratio_quantile']:.2f}/{_quantile_bound(entry, tolerance)} "
        f"max x{entry['ratio_max']:.2f}/{tolerance['max_factor']:g}{'' if entry['pass'] else ' FAIL'}"
        for name, entry in precision["outputs"].items()
    ]
    measured = "; ".join(cells) or "nothing measured"
    where = f"error vs {precision['reference']} / {precision['floor']}'s, {precision['images']} images"
    return f"{'':12s} {where}: {measured}"


def _quantile_bound(entry: dict, tolerance: dict) -> str:
    # Reports written before quantile_judged existed judged every quantile.
    if entry.get("quantile_judged", True):
        return f"{tolerance['quantile_factor']:g}"
    return f"- (not judged: {entry['elements']} elements, too few beyond the quantile)"


def _precision_failures(precision: dict, tolerance: dict) -> list[str]:
    if not precision["outputs"]:
        return ["no image was run against the fp64 reference"]
    found = []
    for name, entry in precision["outputs"].items():
        if entry.get("quantile_judged", True) and entry["ratio_quantile"] > tolerance["quantile_factor"]:
            found.append(
                f"{name} error q{precision['quantile'] * 100:g} {entry['error_quantile']:.3g} = "
                f"{entry['ratio_quantile']:.3g}x {precision['floor']}'s {entry['floor_quantile']:.3g} "
                f"(factor {tolerance['quantile_factor']:g})"
            )
        if entry["ratio_max"] > tolerance["max_factor"]:
            found.append(
                f"{name} error max {entry['error_max']:.3g} = {entry['ratio_max']:.3g}x "
                f"{precision['floor']}'s {entry['floor_max']:.3g} (factor {tolerance['max_factor']:g})"
            )
    return found


def parity_failures(entry: dict) -> list[str]:
    """Every check one backend's parity entry failed, with the measured value and its bound."""
    tolerance = entry["tolerance"]
    found = _precision_failures(entry["precision"], tolerance)
    if entry["delta_AP"] is not None and abs(entry["delta_AP"]) > tolerance["delta_ap"]:
        found.append(f"delta_AP {entry['delta_AP']:.3g} (bound {tolerance['delta_ap']:g})")
    gates = entry.get("gate_decisions")
    if gates and gates["flip_rate"] > tolerance["max_gate_flip_rate"]:
        found.append(f"gate flip rate {gates['flip_rate']:.3g} (bound {tolerance['max_gate_flip_rate']:g})")
    return found


def failures(report: dict) -> list[str]:
    """Why a validate report did not pass, one clause per failed backend or parity check."""
    found = [f"{name} failed: {entry['reason']}" for name, entry in report["backends"].items()
             if entry["status"] == "failed"]  # fmt: skip
    for name, entry in report["parity"].items():
        if not entry["pass"]:
            found.append(f"{name} parity FAIL ({'; '.join(parity_failures(entry))})")
    if not found and not report["pass"] and report.get("reason"):
        found.append(report["reason"])
    return found
