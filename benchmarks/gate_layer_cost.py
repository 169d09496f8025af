"""Which layer's gates cost the AP: python benchmarks/gate_layer_cost.py --model GATED_CKPT.

An experiment, not part of gsmlp: its figures are recorded in docs/CALIBRATION.md ("Which layer costs the
AP"). Evaluates a gated checkpoint with every FFN dense, with all gated, with one layer gated at a time,
and with only the encoder or only the decoder gated, on the same images, and prints AP and AP50 as JSON.
"""

from __future__ import annotations

import argparse
import json

import torch

from gsmlp.data.coco import CocoDataset, resolve_dataset
from gsmlp.data.evaluate import coco_metrics, detect
from gsmlp.model.loaders import LoadedDetector, load_detector
from gsmlp.model.wrap import gated_layers


def ap_with_gated(
    detector: LoadedDetector, dataset: CocoDataset, gated: list[str], limit: int, batch_size: int
) -> tuple[float, float]:
    """AP and AP50 with the named layers gated and every other FFN dense."""
    for name, layer in gated_layers(detector.model):
        layer.set_mode("gated" if name in gated else "dense")
    detections, _ = detect(detector, dataset, batch_size, limit, desc=",".join(gated) or "dense")
    metrics = coco_metrics(dataset, detections)
    return round(metrics["AP"], 2), round(metrics["AP50"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a gated checkpoint (gsmlp calibrate --method mgs)")
    parser.add_argument("--data", default="shapes-val")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model)
    dataset = resolve_dataset(args.data)
    # Only the FFNs that have a gate: `gsmlp calibrate --gate-layers encoder` leaves the decoder's without.
    names = [name for name, layer in gated_layers(detector.model) if layer.gate is not None]
    variants = {"dense": [], "all": names, **{name: [name] for name in names}}
    for stack in ("encoder", "decoder"):
        stack_names = [n for n in names if n.startswith(stack)]
        if stack_names and stack_names != names:
            variants[f"{stack} only"] = stack_names
    rows = {
        label: ap_with_gated(detector, dataset, gated, args.limit, args.batch_size)
        for label, gated in variants.items()
    }
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
