"""The readable companions of a validate report.json: report.md and PNG plots, written beside it."""

from __future__ import annotations

from pathlib import Path

from gsmlp.io import atomic_file_set, write_json_atomic, write_text_atomic
from gsmlp.paths import json_output
from gsmlp.plots import png_figure
from gsmlp.validation.parity import DIFFERENCE_KEYS

# An existing --report is replaced only if it is one of these (the demo's report.json is one too).
VALIDATE_REPORT = json_output("a report written by gsmlp validate", ("backends", "parity", "pass"))


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def _backends_table(report: dict) -> list[str]:
    lines = [
        "| backend | status | GatedSparseMLP ran on | AP | AP50 | latency median ms | latency p90 ms "
        "| encoder FFN sparsity | reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["backends"].items():
        metrics, latency = entry.get("metrics") or {}, entry.get("latency_ms") or {}
        sparsity = (entry.get("ffn_sparsity") or {}).get("encoder")
        cells = [name, entry["status"], entry.get("implementation") or "-"]
        cells += [_fmt(metrics.get("AP"), 2), _fmt(metrics.get("AP50"), 2)]
        cells += [
            _fmt(latency.get("median"), 1),
            _fmt(latency.get("p90"), 1),
            _fmt(sparsity),
            entry["reason"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _parity_section(name: str, entry: dict, reference: dict) -> list[str]:
    verdict = "pass" if entry["pass"] else "**FAIL**"
    tolerance = entry["tolerance"]
    lines = [f"### {name}: {verdict}", ""]
    lines.append(
        f"Tolerance: |delta AP| <= {tolerance['delta_ap']}, gate flip rate <= "
        f"{tolerance['max_gate_flip_rate']}, and per output the error against PyTorch fp64 within "
        f"{tolerance['quantile_factor']:g}x (quantile {tolerance['quantile']:g}) and "
        f"{tolerance['max_factor']:g}x (maximum) of PyTorch's own, both raised to "
        f"{tolerance['floor_ulps']:g} ulps."
    )
    lines += ["", *_precision_table(entry["precision"])]
    lines += ["", "| metric | pytorch | " + name + " | delta |", "|---|---|---|---|"]
    ours = entry.get("metrics_delta") or {}
    for metric, delta in ours.items():
        ref_value = (reference.get("metrics") or {}).get(metric)
        lines.append(f"| {metric} | {_fmt(ref_value, 2)} | {_fmt(ref_value + delta, 2)} | {_fmt(delta)} |")
    agreement = entry["detection_agreement"]
    lines += [
        "",
        f"Detection agreement: {_fmt(agreement['agreement'])} of {agreement['detections']} top detections "
        f"(label {_fmt(agreement['label_agreement'])}, min IoU {_fmt(agreement['min_iou'])}, "
        f"required IoU {agreement['min_iou_required']}).",
        "",
    ]
    own = "" if not entry.get("gate_decisions") else " (own decisions, flips included)"
    lines += _difference_table(entry["outputs"], own)
    return lines + _gate_lines(entry.get("gate_decisions")) + [""]


def _precision_table(precision: dict) -> list[str]:
    """Per output: the backend's scaled error against fp64, PyTorch's floor, and their ratio."""
    quantile = f"q{precision['quantile'] * 100:g}"
    lines = [
        f"Precision: error = |out - fp64| / max(|fp64|, 1) against {precision['reference']}, on "
        f"{precision['images']} images; floor = {precision['floor']}'s error (raised to "
        f"{_fmt(precision['floor_unit'])}).",
        "",
        f"| output | error {quantile} | floor {quantile} | ratio {quantile} | error max | floor max "
        "| ratio max | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for output, entry in precision["outputs"].items():
        cells = [_fmt(entry[key]) for key in ("error_quantile", "floor_quantile", "ratio_quantile")]
        if not entry.get("quantile_judged", True):
            cells[2] += f" (not judged: {entry['elements']} elements)"
        cells += [_fmt(entry[key]) for key in ("error_max", "floor_max", "ratio_max")]
        verdict = "pass" if entry["pass"] else "**FAIL**"
        lines.append(f"| {output} | " + " | ".join(cells) + f" | {verdict} |")
    if not precision["outputs"]:
        lines.append("| - | no image was run against the fp64 reference | | | | | | **FAIL** |")
    return lines


def _difference_table(outputs: dict, qualifier: str) -> list[str]:
    lines = [
        f"| output | max abs diff{qualifier} | max rel diff{qualifier} | max scaled diff{qualifier} |",
        "|---|---|---|---|",
    ]
    for output, diff in outputs.items():
        lines.append(f"| {output} | " + " | ".join(_fmt(diff[key]) for key in DIFFERENCE_KEYS) + " |")
    return lines


def _gate_lines(gates: dict | None) -> list[str]:
    if not gates:
        return []
    lines = [
        "",
        f"Gate decisions: {gates['flipped']} of {gates['decisions']} taken differently from PyTorch "
        f"(flip rate {_fmt(gates['flip_rate'])}). With PyTorch re-run under this backend's decisions "
        "(what max abs diff is measured on):",
        "",
    ]
    return lines + _difference_table(gates["outputs_pinned"], " (pinned)")


def report_markdown(report: dict) -> str:
    """A person's view of one validate report: backends, parity per metric, agreement, diffs, sparsity."""
    lines = [f"# Validation: {'pass' if report['pass'] else 'FAIL'}", ""]
    for key in ("model", "onnx", "dtype", "family", "images"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    skipped = report.get("skipped_images") or []
    lines.append(
        f"- skipped images: {len(skipped)}" + (f" ({', '.join(map(str, skipped[:10]))})" if skipped else "")
    )
    missing = report.get("missing_images") or []
    lines.append(f"- missing images: {len(missing)}" + (f" ({', '.join(missing[:10])})" if missing else ""))
    if report.get("reason"):
        lines.append(f"- {report['reason']}")
    lines += ["", "## Backends", "", *_backends_table(report), "", "## Parity against PyTorch", ""]
    reference = report["backends"].get(report.get("reference", "pytorch"), {})
    for name, entry in report["parity"].items():
        lines += _parity_section(name, entry, reference)
    if not report["parity"]:
        lines += ["No backend besides the reference ran.", ""]
    sparsity = reference.get("ffn_sparsity")
    if sparsity:
        lines += ["## FFN sparsity (measured by PyTorch)", "", "| layer | skipped fraction |", "|---|---|"]
        for layer, values in sparsity["per_layer"].items():
            lines.append(f"| {layer} | {_fmt(values.get('ffn_sparsity'))} |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, draw) -> None:
    with png_figure(path) as axes:
        draw(axes)


def companion_paths(report_path: str | Path) -> tuple[Path, Path, Path]:
    """REPORT.md, REPORT_ap.png and REPORT_sparsity.png: the files written beside REPORT.json."""
    base = Path(report_path)
    stem = base.with_suffix("")
    return (
        stem.with_suffix(".md"),
        base.with_name(f"{stem.name}_ap.png"),
        base.with_name(f"{stem.name}_sparsity.png"),
    )


def write_report_files(report: dict, report_path: str | Path, markdown: str | None = None) -> list[Path]:
    """REPORT.md, REPORT_ap.png and (gated model) REPORT_sparsity.png beside report_path; returns them.

    markdown replaces the default report_markdown(report) (the demo writes both modes into one file).
    """
    markdown_path, ap_path, sparsity_path = companion_paths(report_path)
    written = [markdown_path]
    write_text_atomic(markdown_path, markdown if markdown is not None else report_markdown(report))
    aps = {n: (e.get("metrics") or {}).get("AP") for n, e in report["backends"].items()}
    aps = {n: ap for n, ap in aps.items() if ap is not None}

    def draw_ap(axes) -> None:
        axes.bar(list(aps), list(aps.values()))
        axes.set_ylabel("AP (COCO points)")
        axes.set_title("AP per backend")

    written.append(ap_path)
    _plot(ap_path, draw_ap)
    reference = report["backends"].get(report.get("reference", "pytorch"), {})
    per_layer = (reference.get("ffn_sparsity") or {}).get("per_layer")
    if per_layer:

        def draw_sparsity(axes) -> None:
            names = list(per_layer)
            axes.bar(range(len(names)), [per_layer[n].get("ffn_sparsity", 0.0) for n in names])
            axes.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
            axes.set_ylim(0, 1)
            axes.set_ylabel("fraction of FFN neurons skipped")
            axes.set_title("per-layer FFN sparsity (PyTorch)")

        written.append(sparsity_path)
        _plot(sparsity_path, draw_sparsity)
    return written


def write_report_set(report: dict, report_path: str | Path, markdown: str | None = None) -> None:
    """REPORT.json and its companions (companion_paths) as one set: all of them published, or none, and no
    companion of an earlier report left beside the new one (a dense run removes a gated run's plot)."""
    report_path = Path(report_path)
    with atomic_file_set([report_path, *companion_paths(report_path)]) as (staged, *_):
        write_json_atomic(staged, report)
        write_report_files(report, staged, markdown)
