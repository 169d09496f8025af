"""Which nodes carry a Deformable DETR fp16 file's error: python benchmarks/fp16_error.py --help.

An experiment, not part of gsmlp: its figures are recorded in docs/VALIDATION.md ("fp16: where the error
comes from"). The model's exported graph is split into groups of nodes by the module that traced them
(backbone, input projections, the encoder's sampling-location arithmetic, its sampling, its FFNs, ...).
Each variant is the fp16 file with some groups kept float32 (exporter.fp16.convert_to_fp16's `keep_fp32`:
their tensors, weights and arithmetic stay fp32, with Casts on the edges), run through ONNX Runtime on the
same preprocessed images as PyTorch in float32 and float64. The script prints, per variant, the largest
absolute and scaled (|d| / max(|ref|, 1)) difference over logits and pred_boxes against both references:
    pytorch autocast fp16   PyTorch's own fp16 (the floor `gsmlp validate` judges fp16 files by).
    keep:GROUP   the fp16 file with GROUP (and LayerNorm/Softmax, always) in fp32: does GROUP carry error?
    only:GROUP   everything fp32 but GROUP: how much error GROUP alone brings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

from gsmlp.data.coco import resolve_dataset
from gsmlp.exporter.export import ExportOptions, export_onnx
from gsmlp.exporter.fp16 import convert_to_fp16
from gsmlp.exporter.node_groups import node_group
from gsmlp.model.loaders import load_detector
from gsmlp.model.wrap import set_mode
from gsmlp.runtime.ort_session import open_session
from gsmlp.validation.backends import OUTPUTS
from gsmlp.validation.coco_run import coco_batches


def _variant(fp32: onnx.ModelProto, keep: Callable[[onnx.NodeProto], bool]) -> bytes:
    proto = onnx.ModelProto()
    proto.CopyFrom(fp32)
    convert_to_fp16(proto, keep_fp32=keep)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _differences(outputs: list[dict], reference: list[dict]) -> dict[str, float]:
    worst_abs = worst_scaled = 0.0
    for out, ref in zip(outputs, reference, strict=True):
        for name in OUTPUTS:
            diff = np.abs(out[name].astype(np.float64) - ref[name])
            worst_abs = max(worst_abs, float(diff.max()))
            worst_scaled = max(worst_scaled, float((diff / np.maximum(np.abs(ref[name]), 1.0)).max()))
    return {"max_abs": worst_abs, "max_scaled": worst_scaled}


def _pytorch(model: torch.nn.Module, batches, dtype: torch.dtype, autocast: bool = False) -> list[dict]:
    model = model.to(dtype)
    results = []
    mixed = torch.autocast("cpu", dtype=torch.float16, enabled=autocast)
    with torch.no_grad(), mixed:
        for batch in batches:
            values = torch.from_numpy(batch.pixel_values).to(dtype)
            out = model(pixel_values=values, pixel_mask=torch.from_numpy(batch.pixel_mask))
            results.append(
                {"logits": out.logits.double().numpy(), "pred_boxes": out.pred_boxes.double().numpy()}
            )
    model.float()
    return results


def _run(model: bytes, batches) -> list[dict]:
    session = open_session(model, op="function").session
    runs = [
        session.run(OUTPUTS, {"pixel_values": b.pixel_values, "pixel_mask": b.pixel_mask}) for b in batches
    ]
    return [dict(zip(OUTPUTS, run, strict=True)) for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="deformable-detr-small")
    parser.add_argument("--data", default="shapes-val")
    parser.add_argument("--limit", type=int, default=50, help="images (default 50)")
    parser.add_argument("--size", type=int, default=320, help="square export size (default 320)")
    parser.add_argument("--sampling", choices=("op", "inline"), default="op")
    parser.add_argument("--only", action="store_true", help="also run only:GROUP for every group")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        help="comma list of groups kept fp32 together: one variant, repeatable; given, the per-group "
        "variants are skipped",
    )
    args = parser.parse_args()

    loaded = load_detector(args.model, sampling="transformers")
    set_mode(loaded.model, "dense")
    shape = (1, 3, args.size, args.size)
    batches = coco_batches(resolve_dataset(args.data), args.limit, loaded.preprocess, 1, shape, args.model)
    references = {"fp32": _pytorch(loaded.model, batches, torch.float32),
                  "fp64": _pytorch(loaded.model, batches, torch.float64)}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fp32.onnx"
        options = ExportOptions(dense=True, height=args.size, width=args.size, sampling=args.sampling)
        export_onnx(loaded.model, path, options)
        fp32 = onnx.load(str(path))
    groups = sorted({node_group(n.name) for n in fp32.graph.node})
    counts = {g: sum(node_group(n.name) == g for n in fp32.graph.node) for g in groups}
    print(json.dumps({"groups": counts}), flush=True)
    variants: dict[str, Callable[[onnx.NodeProto], bool]] = {
        "fp32 file": lambda node: True,
        "fp16 file": lambda node: False,
    }
    for group in groups if not args.keep else ():
        variants[f"keep:{group}"] = lambda node, g=group: node_group(node.name) == g
        if args.only:
            variants[f"only:{group}"] = lambda node, g=group: node_group(node.name) != g
    for chosen in args.keep:
        together = frozenset(chosen.split(","))
        variants[f"keep:{chosen}"] = lambda node, c=together: node_group(node.name) in c
    # The floor gsmlp validate judges fp16 files by (gsmlp.validation.precision): PyTorch's own fp16.
    autocast = _pytorch(loaded.model, batches, torch.float32, autocast=True)
    row = {ref: _differences(autocast, references[ref]) for ref in references}
    print(json.dumps({"variant": "pytorch autocast fp16", **row}), flush=True)
    for name, keep in variants.items():
        outputs = _run(_variant(fp32, keep), batches)
        row = {ref: _differences(outputs, references[ref]) for ref in references}
        print(json.dumps({"variant": name, **row}), flush=True)


if __name__ == "__main__":
    main()
