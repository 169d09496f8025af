"""calibration.json, calibration.md and calibration.png: what calibration did and what it cost."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gsmlp.calibration.pipeline import LayerResult
from gsmlp.io import write_json_atomic, write_text_atomic
from gsmlp.plots import png_figure


def heldout_estimate(results: Mapping[str, LayerResult], statistics_tokens: Mapping[str, int]) -> dict:
    """Sparsity and MAC ratios predicted from held-out calibration tokens (used without --eval-data)."""
    report: dict = {"per_layer": {}}
    for part in ("encoder", "decoder", "all"):
        dense = gate = computed = 0.0
        for name, result in results.items():
            if part != "all" and not name.startswith(part + "."):
                continue
            sparsity = (
                result.heldout_sparsity if result.heldout_sparsity is not None else result.static_sparsity
            )
            tokens = statistics_tokens[name]
            dense += tokens * result.dense_ffn_macs
            gate += tokens * result.gate_macs
            computed += tokens * result.dense_ffn_macs * (1.0 - sparsity)
            report["per_layer"][name] = {"tokens": tokens, "ffn_sparsity": sparsity}
        key = "" if part == "all" else f"{part}_"
        if part != "all":
            report[part] = 1.0 - computed / dense if dense else 0.0
        report[f"{key}gate_cost_ratio"] = gate / dense if dense else 0.0
        report[f"{key}ffn_mac_ratio"] = (gate + computed) / dense if dense else 0.0
    return report


def summary_markdown(report: dict) -> str:
    sparsity = report["ffn_sparsity"]
    lines = [
        f"# Calibration of {report['model']} ({report['method']})",
        "",
        "- calibration data: {data}, {images} images".format(**report["calibration_data"]),
        f"- measured on: {report['measured_on']}",
        f"- FFN sparsity: encoder {sparsity['encoder']:.3f}, decoder {sparsity['decoder']:.3f}",
        f"- gate cost / dense FFN MACs: {report['gate_cost_ratio']:.4f}",
        f"- (gate + computed FFN) / dense FFN MACs: {report['ffn_mac_ratio']:.4f}",
    ]
    if report.get("AP_dense") is not None:
        lines.append(f"- AP dense {report['AP_dense']:.2f}, AP gated {report['AP_gated']:.2f} (COCO points)")
    lines += ["", "| layer | kept / dense | zero fraction | held-out sparsity | recall | measured sparsity |"]
    lines.append("|---|---|---|---|---|---|")
    for name, layer in report["layers"].items():
        measured = sparsity["per_layer"].get(name, {}).get("ffn_sparsity")
        lines.append(
            f"| {name} | {layer['hidden']} / {layer['dense_hidden']} | {layer['zero_fraction']:.3f} | "
            f"{_fmt(layer['heldout_sparsity'])} | {_fmt(layer['heldout_recall'])} | {_fmt(measured)} |"
        )
    if report.get("sweep"):
        lines += [
            "",
            f"| {report['sweep_variable']} | encoder sparsity | decoder sparsity | ffn MAC ratio | AP |",
        ]
        lines.append("|---|---|---|---|---|")
        for point in report["sweep"]:
            lines.append(
                f"| {point['value']} | {point['encoder']:.3f} | {point['decoder']:.3f} | "
                f"{point['ffn_mac_ratio']:.3f} | {_fmt(point['AP'], 2)} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_report(report: dict, folder: Path) -> None:
    write_json_atomic(folder / "calibration.json", report)
    write_text_atomic(folder / "calibration.md", summary_markdown(report))
    plot_report(report, folder / "calibration.png")


def plot_report(report: dict, path: Path) -> None:
    with png_figure(path, columns=2, size=(12, 4.5), dpi=110) as (bars, curve):
        _draw_sparsity_bars(bars, report)
        _draw_sweep(curve, report)


def _draw_sparsity_bars(bars, report: dict) -> None:
    names = list(report["layers"])
    measured = [report["ffn_sparsity"]["per_layer"].get(n, {}).get("ffn_sparsity", 0.0) for n in names]
    inherent = [report["layers"][n]["zero_fraction"] for n in names]
    positions = range(len(names))
    bars.bar([p - 0.2 for p in positions], inherent, width=0.4, label="zero ReLU outputs (dense)")
    bars.bar([p + 0.2 for p in positions], measured, width=0.4, label=f"skipped ({report['method']})")
    bars.set_xticks(list(positions), names, rotation=60)
    bars.set_ylim(0, 1)
    bars.set_ylabel("fraction of dense FFN neurons")
    bars.set_title("per-layer FFN sparsity")
    bars.legend(fontsize=8)


def _draw_sweep(curve, report: dict) -> None:
    sweep = [p for p in report.get("sweep", []) if p["AP"] is not None]
    if sweep:
        curve.plot([p["encoder"] for p in sweep], [p["AP"] for p in sweep], "o-", label="calibrated")
        for point in sweep:
            curve.annotate(str(point["value"]), (point["encoder"], point["AP"]), fontsize=7)
        curve.axhline(report["AP_dense"], color="gray", linestyle="--", label="dense")
        curve.set_xlabel("encoder FFN sparsity")
        curve.set_ylabel("AP (COCO points)")
        curve.legend(fontsize=8)
    else:
        curve.text(0.5, 0.5, "no --eval-data: AP not measured", ha="center", va="center")
    curve.set_title(f"AP vs sparsity (sweep of {report.get('sweep_variable', '-')})")
