"""Measure export parity on real images: python benchmarks/export_parity.py --help.

An experiment, not part of gsmlp: its figures are recorded in docs/EXPORT.md.

Builds a randomly initialised full-size DETR-R50 or Deformable-DETR-R50, wraps it with random micro-gates
(gated mode, so the masks are non-trivial), exports fp32 and fp16 ONNX at one traced size, runs real images
(preprocessed by gsmlp.model.processing, padded to that size) through PyTorch and ONNX Runtime, and prints
the parity figures recorded in docs/EXPORT.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from PIL import Image
from transformers import DeformableDetrForObjectDetection, DetrForObjectDetection

from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.model.configs import deformable_detr_r50_config, detr_r50_config
from gsmlp.model.gated_mlp import MicroGate
from gsmlp.model.processing import PreprocessConfig, preprocess
from gsmlp.model.wrap import gated_layers, set_mode, wrap_ffns
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.gate_decisions import PinnedReference
from gsmlp.validation.harness import InputBatch, validate_backends
from gsmlp.validation.inputs import fit_batch
from gsmlp.validation.tolerances import tolerance_for

BUILDERS = {
    "detr": (DetrForObjectDetection, detr_r50_config),
    "deformable-detr": (DeformableDetrForObjectDetection, deformable_detr_r50_config),
}


def random_gated_r50(family: str, seed: int = 0) -> torch.nn.Module:
    model_class, config = BUILDERS[family]
    torch.manual_seed(seed)
    model = wrap_ffns(model_class(config()).eval(), block_size=32)
    for _, layer in gated_layers(model):
        layer.attach_gate(MicroGate(layer.d_model, layer.num_blocks, rank=16), threshold=0.0)
    set_mode(model, "gated")
    return model


def image_batches(folder: Path, count: int, height: int, width: int) -> list[InputBatch]:
    side = min(height, width) - 8  # both image sides capped below the canvas (resizing rounds up)
    config = PreprocessConfig(shortest_edge=side, longest_edge=side, pad_multiple=1)
    batches = []
    for file in sorted(folder.glob("*.jpg"))[:count]:
        batch = preprocess([Image.open(file).convert("RGB")], config)
        values, mask, _ = fit_batch(
            batch.pixel_values.numpy(), batch.pixel_mask.numpy(), (1, 3, height, width), ""
        )
        batches.append(InputBatch(values, mask))
    return batches


def measure(
    family: str, images: Path, count: int, height: int, width: int, dtypes: list[str], dense: bool = False
) -> dict:
    """Per dtype, validate's parity entry for ONNX Runtime: the precision check against fp64 (gated: with
    the file's own gate decisions pinned), the differences against PyTorch fp32, detection agreement."""
    model = random_gated_r50(family)
    if dense:  # the same weights without gating: isolates export error from gate-decision flips
        set_mode(model, "dense")
    batches = image_batches(images, count, height, width)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for dtype in dtypes:
            path = Path(folder) / f"{dtype}.onnx"
            export_onnx(model, path, ExportOptions(height=height, width=width, dtype=dtype, dense=dense))
            pytorch = PyTorchBackend(model)
            backends = {"pytorch": pytorch, "onnxruntime": OnnxRuntimeBackend(path, gate_decisions=not dense)}
            report = validate_backends(
                backends,
                batches,
                family=family,
                tolerance=tolerance_for(dtype),
                pin=None if dense else PinnedReference(pytorch),
                dtype=dtype,
            )
            entry = report["parity"]["onnxruntime"]
            results[f"onnxruntime-{dtype}"] = {
                "pass": entry["pass"],
                "precision": entry["precision"],
                "outputs": entry["outputs"],
                "gate_decisions": entry["gate_decisions"],
                "detection_agreement": entry["detection_agreement"],
                "latency_ms": report["backends"]["onnxruntime"]["latency_ms"],
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", choices=sorted(BUILDERS), required=True)
    parser.add_argument("--images", type=Path, required=True, help="a folder of .jpg images (COCO val2017)")
    parser.add_argument("--count", type=int, default=4, help="images to run (default: 4)")
    parser.add_argument(
        "--size", default="320x320", help="traced HxW; images are resized to fit (default: 320x320)"
    )
    parser.add_argument("--dense", action="store_true", help="export and compare the dense model")
    parser.add_argument("--dtypes", default="fp32,fp16", help="comma-separated (default: fp32,fp16)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    result = measure(args.family, args.images, args.count, height, width, args.dtypes.split(","), args.dense)
    header = {"family": args.family, "size": args.size, "images": args.count, "dense": args.dense}
    print(json.dumps({**header, **result}, indent=2))


if __name__ == "__main__":
    main()
