"""How a correct file's error/floor ratio swings on few images (see --help).

An experiment, not part of gsmlp: its figures are in docs/VALIDATION.md ("Few images: the quantile needs a
tail"). Validates FILE against MODEL on the first N shapes-val images (batch 1, as `gsmlp validate` does),
keeps every image's errors against fp64 and PyTorch fp32's floor, then splits the images into groups of 1, 3
and 10 and prints, per output, the median, 90th percentile and largest of each group's ratio of maxima.

    python benchmarks/precision_small_samples.py --model runs/detr-small-mgs --onnx runs/g320.onnx --limit 90
"""

from __future__ import annotations

import argparse

import numpy as np

from gsmlp.data.coco import resolve_dataset
from gsmlp.model.loaders import load_detector
from gsmlp.validation import precision
from gsmlp.validation.session import build_report


def record_per_image() -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Every PrecisionErrors.add from here on, as {output: (backend errors, floor errors)} per batch."""
    batches: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    add = precision.PrecisionErrors.add

    def recording(self, reference, backend, floor, images: int) -> None:
        add(self, reference, backend, floor, images)
        batches.append(
            {
                name: (precision.scaled_errors(ref, backend[name]), precision.scaled_errors(ref, floor[name]))
                for name, ref in reference.items()
            }
        )

    precision.PrecisionErrors.add = recording
    return batches


def group_ratios(batches: list, output: str, size: int) -> np.ndarray:
    unit = precision.ULP["fp32"]
    ratios = []
    for start in range(0, len(batches) - size + 1, size):
        group = batches[start : start + size]
        error = np.concatenate([b[output][0] for b in group]).max()
        floor = np.concatenate([b[output][1] for b in group]).max()
        ratios.append(max(error, unit) / max(floor, unit))
    return np.array(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the checkpoint the file was exported from")
    parser.add_argument("--onnx", required=True, help="an fp32 file of `gsmlp export`")
    parser.add_argument("--limit", type=int, default=90, help="shapes-val images (default: 90)")
    args = parser.parse_args()
    batches = record_per_image()
    report = build_report(
        load_detector(args.model), args.onnx, resolve_dataset("shapes-val"), ["pytorch", "onnxruntime"],
        limit=args.limit, batch_size=1,
    )  # fmt: skip
    for output in ("logits", "pred_boxes"):
        for size in (1, 3, 10):
            r = group_ratios(batches, output, size)
            elements = sum(batches[i][output][0].size for i in range(size))
            print(f"{output} groups of {size} image(s) ({elements} elements): {r.size} groups, median "
                  f"{np.median(r):.2f}, p90 {np.quantile(r, 0.9):.2f}, largest {r.max():.2f}")  # fmt: skip
    whole = report["parity"]["onnxruntime"]["precision"]["outputs"]
    for output, entry in whole.items():
        print(f"{output} all {args.limit} images: ratio quantile {entry['ratio_quantile']:.2f}, "
              f"max {entry['ratio_max']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
