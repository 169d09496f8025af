"""The sweep's feature cache, timed: one `gsmlp calibrate` with and without it, in one process (see --help).

An experiment, not part of gsmlp: its figures are in docs/SCALING.md ("The sweep's cache"). It runs the
calibration twice, `--sweep-cache-mb 0` first and then the default, each into a temporary folder, and prints
the seconds of each evaluation stage (dense, gated, the sweep), their ratios, and whether every sweep point
(AP, AP50, sparsities, FFN MAC ratio) is identical. Gate training and statistics are the same in both runs
(same seed, same images), so only the evaluations differ.

    python benchmarks/sweep_cache.py --model detr-small --data shapes-train --eval-data shapes-val \\
        --limit 100 --eval-limit 100
    C=../shared/data/coco_val2017_subset
    python benchmarks/sweep_cache.py --model runs/detr-r50-random \\
        --data $C/annotations/instances_val2017.json --images $C/val2017 --limit 8 \\
        --eval-data $C/annotations/instances_val2017.json --eval-images $C/val2017 --eval-limit 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from gsmlp.calibration.options import DEFAULT_SWEEP_CACHE_MB, CalibrationJob, CalibrationOptions
from gsmlp.calibration.workflow import calibrate

STAGES = ("eval_dense_s", "eval_gated_s", "sweep_s")


def run(args: argparse.Namespace, cache_mb: float, out: Path) -> dict:
    method = CalibrationOptions(method="mgs", gate_steps=args.gate_steps)
    job = CalibrationJob(
        model=args.model, data=args.data, images=args.images, out=out, limit=args.limit,
        eval_data=args.eval_data, eval_images=args.eval_images, eval_limit=args.eval_limit,
        sweep=args.sweep, sweep_cache_mb=cache_mb, method=method,
    )  # fmt: skip
    calibrate(job)
    return json.loads((out / "calibration.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a dense model (built-in name or folder)")
    parser.add_argument("--data", required=True, help="calibration data (a split or a COCO JSON)")
    parser.add_argument("--images", help="the image folder of a COCO JSON --data")
    parser.add_argument("--eval-data", required=True, help="the evaluation data of the sweep")
    parser.add_argument("--eval-images", help="the image folder of a COCO JSON --eval-data")
    parser.add_argument("--limit", type=int, default=100, help="calibration images (default: 100)")
    parser.add_argument("--eval-limit", type=int, help="evaluation images (default: all)")
    parser.add_argument("--gate-steps", type=int, default=600, help="gate training steps (default: 600)")
    parser.add_argument("--sweep", help="sweep values (default: calibrate's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        uncached = run(args, 0, Path(temporary) / "uncached")
        cached = run(args, DEFAULT_SWEEP_CACHE_MB, Path(temporary) / "cached")
    print(f"{'stage':<14}{'no cache s':>12}{'cache s':>10}{'speedup':>9}")
    for stage in (*STAGES, "all three"):
        names = STAGES if stage == "all three" else (stage,)
        before, after = (sum(r["timings_s"][name] for name in names) for r in (uncached, cached))
        print(f"{stage:<14}{before:>12.1f}{after:>10.1f}{before / after:>8.2f}x")
    print(f"cache: {cached['sweep_cache']}")
    points = len(cached["sweep"])
    same = cached["sweep"] == uncached["sweep"]
    print(f"sweep points identical: {'yes' if same else 'NO'} ({points} points)")
    for a, b in zip(uncached["sweep"], cached["sweep"], strict=True):
        print(f"  {a['value']}: AP {a['AP']:.3f} / {b['AP']:.3f}, encoder sparsity {a['encoder']:.4f} / "
              f"{b['encoder']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
