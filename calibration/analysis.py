"""The inherent-sparsity baseline: per FFN, the fraction of zero ReLU outputs and how often each neuron fires.

Written as analysis.json and analysis.png. This is what SIBS (neurons that never fire) and MGS (neurons
that fire for some tokens only) start from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from gsmlp.calibration.statistics import LayerStatistics
from gsmlp.io import write_json_atomic
from gsmlp.plots import png_figure

HISTOGRAM_BINS = 20  # activation frequency in [0, 1], bins of 0.05
RARE_LEVELS = (0.0, 0.001, 0.01, 0.05)  # "neurons firing on at most this fraction of tokens"


def layer_analysis(stats: LayerStatistics) -> dict:
    frequency = stats.frequency
    counts = torch.histc(frequency.float(), bins=HISTOGRAM_BINS, min=0.0, max=1.0)
    return {
        "tokens": stats.tokens,
        "hidden": stats.hidden,
        "zero_fraction": stats.zero_fraction,
        "frequency_histogram": {"bin_edges": _edges(), "neurons": [int(c) for c in counts]},
        "neurons_at_most": {str(level): int((frequency <= level).sum()) for level in RARE_LEVELS},
        "frequency_quantiles": {str(q): float(frequency.quantile(q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
        "mean_active_value": float(stats.mean_value.sum() / max(float(stats.active_count.sum()), 1.0)),
    }


def _edges() -> list[float]:
    return [round(i / HISTOGRAM_BINS, 4) for i in range(HISTOGRAM_BINS + 1)]


def analyze(layers: Mapping[str, LayerStatistics], images: int, source: dict) -> dict:
    per_layer = {name: layer_analysis(stats) for name, stats in layers.items()}
    report = {"source": source, "images": images, "per_layer": per_layer}
    for part in ("encoder", "decoder"):
        chosen = [s for name, s in layers.items() if name.startswith(part + ".")]
        total = sum(s.tokens * s.hidden for s in chosen)
        zeros = sum(s.zero_fraction * s.tokens * s.hidden for s in chosen)
        report[f"{part}_zero_fraction"] = zeros / total if total else 0.0
    return report


def write_analysis(report: dict, layers: Mapping[str, LayerStatistics], folder: Path) -> None:
    write_json_atomic(folder / "analysis.json", report)
    plot_analysis(report, layers, folder / "analysis.png")


def plot_analysis(report: dict, layers: Mapping[str, LayerStatistics], path: Path) -> None:
    with png_figure(path, columns=2, size=(12, 4.5), dpi=110) as (bars, histogram):
        _draw_zero_fractions(bars, report)
        _draw_frequencies(histogram, report, layers)


def _draw_zero_fractions(bars, report: dict) -> None:
    names = list(report["per_layer"])
    zeros = [report["per_layer"][n]["zero_fraction"] for n in names]
    bars.bar(names, zeros, color=["tab:blue" if n.startswith("encoder") else "tab:orange" for n in names])
    bars.set_ylim(0, 1)
    bars.set_ylabel("fraction of zero ReLU outputs")
    bars.set_title("inherent FFN sparsity per layer")
    bars.tick_params(axis="x", rotation=60)


def _draw_frequencies(histogram, report: dict, layers: Mapping[str, LayerStatistics]) -> None:
    for name in report["per_layer"]:
        histogram.hist(layers[name].frequency.numpy(), bins=50, range=(0, 1), histtype="step", label=name)
    histogram.set_yscale("log")
    histogram.set_xlabel("activation frequency (fraction of tokens where the neuron fires)")
    histogram.set_ylabel("neurons")
    histogram.set_title(f"per-neuron activation frequency ({report['images']} images)")
    histogram.legend(fontsize=7, ncol=2)
