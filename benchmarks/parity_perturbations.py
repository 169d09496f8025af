"""Does the parity criterion tell correct from wrong? python benchmarks/parity_perturbations.py --help.

An experiment, not part of gsmlp: its figures are recorded in docs/VALIDATION.md ("Small real errors").

Exports the model three or more times at one size: unchanged, and each time with one small real error that
leaves the detections and AP as they are (a class-logit bias shifted by 1e-3; one FFN weight matrix scaled
by 1 + 1e-3), then validates each file against the unchanged PyTorch model on the same images, as
`gsmlp validate` does, and prints per file the verdict, each output's error ratios against PyTorch's own
fp32 error from fp64 (quantile and maximum), delta AP and detection agreement.

    python benchmarks/parity_perturbations.py --model runs/detr-small-mgs --data shapes-val --limit 400
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from gsmlp.data.coco import resolve_dataset
from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.model.loaders import load_detector
from gsmlp.model.wrap import gated_layers
from gsmlp.validation.session import build_report


def classifier(model: nn.Module) -> nn.Linear:
    """The class-logit head whose output is `logits` (Deformable DETR: the last decoder layer's)."""
    head = getattr(model, "class_labels_classifier", None) or model.class_embed
    return head[-1] if isinstance(head, nn.ModuleList) else head


def perturbations(model: nn.Module) -> dict[str, tuple[torch.Tensor, Callable[[torch.Tensor], None]]]:
    layers = dict(gated_layers(model))
    first_encoder = layers["encoder.0"]
    last_decoder = layers[[name for name in layers if name.startswith("decoder.")][-1]]
    return {
        "class-logit bias[0] + 1e-3": (classifier(model).bias, lambda t: t[0].add_(1e-3)),
        "encoder.0 fc1.weight x (1 + 1e-3)": (first_encoder.fc1.weight, lambda t: t.mul_(1 + 1e-3)),
        "last decoder fc2.weight x (1 + 1e-3)": (last_decoder.fc2.weight, lambda t: t.mul_(1 + 1e-3)),
    }


@contextlib.contextmanager
def changed(tensor: torch.Tensor | None, change: Callable[[torch.Tensor], None] | None) -> Iterator[None]:
    """The change applied in place for the duration (the export), the original values restored after."""
    if tensor is None or change is None:
        yield
        return
    saved = tensor.detach().clone()
    try:
        with torch.no_grad():
            change(tensor)
        yield
    finally:
        with torch.no_grad():
            tensor.copy_(saved)


def summarize(case: str, report: dict) -> dict:
    entry = report["parity"]["onnxruntime"]
    ratios = {
        name: {"ratio_quantile": out["ratio_quantile"], "ratio_max": out["ratio_max"], "pass": out["pass"]}
        for name, out in entry["precision"]["outputs"].items()
    }
    gates = entry["gate_decisions"]
    return {
        "case": case,
        "pass": entry["pass"],
        "precision": ratios,
        "reference_images": entry["precision"]["images"],
        "max_scaled_diff_vs_fp32": entry["max_scaled_diff"],
        "delta_AP": entry["delta_AP"],
        "detection_agreement": entry["detection_agreement"]["agreement"],
        "gate_flips": None if gates is None else gates["flipped"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a gsmlp --model (gated checkpoint, built-in, ...)")
    parser.add_argument("--data", default="shapes-val", help="a gsmlp --data (default: shapes-val)")
    parser.add_argument("--images", help="the images folder for --data annotations")
    parser.add_argument("--limit", type=int, help="first N images (default: all)")
    parser.add_argument("--size", default="320x320", help="traced HxW (default: 320x320)")
    parser.add_argument("--dense", action="store_true", help="export the dense FFNs")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    dataset = resolve_dataset(args.data, args.images)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        cases = {"unchanged": (None, None), **perturbations(load_detector(args.model).model)}
        for case in cases:
            loaded = load_detector(args.model)  # fresh: validating a dense file switches the FFNs to dense
            tensor, change = {"unchanged": (None, None), **perturbations(loaded.model)}[case]
            path = Path(folder) / "file.onnx"
            with changed(tensor, change):
                export_onnx(loaded.model, path, ExportOptions(height=height, width=width, dense=args.dense))
            report = build_report(
                loaded, path, dataset, ["pytorch", "onnxruntime"], limit=args.limit, batch_size=1
            )
            results.append(summarize(case, report))
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
