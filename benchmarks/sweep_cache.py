"""The sweep's feature cache, timed: one `gsmlp calibrate` with and without it, in one process (see --help).

An experiment, not part of gsmlp: its figures are in docs/SCALING.md ("The sweep's cache"). It runs the
calibration twice, `--sweep-cache-mb 0` first and then the default, each into a temporary folder, and prints
the seconds of each evaluation stage (dense, gated, the sweep), their ratios, and whether every sweep point
(AP, AP50, sparsities, FFN MAC ratio) is identical. Gate training and statistics are the same in both runs
(same seed, same images), so only the evaluations differ.

    python benchmarks/sweep_cache.py --model detr-small --data shapes-train --eval-data shapes-val \\
        --limit 100 --eval-limit 100 --repeat 3
    C=../shared/data/coco_val2017_subset
    python benchmarks/sweep_cache.py --model runs/detr-r50-random \\
        --data $C/annotations/instances_val2017.json --images $C/val2017 --limit 8 \\
        --eval-data $C/annotations/instances_val2017.json --eval-images $C/val2017 --eval-limit 16
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
from pathlib import Path

from gsmlp.calibration import workflow
from gsmlp.calibration.options import DEFAULT_SWEEP_CACHE_MB, CalibrationJob, CalibrationOptions

STAGES = ("eval_dense_s", "eval_gated_s", "sweep_s")


def run(args: argparse.Namespace, cache_mb: float, out: Path) -> dict:
    method = CalibrationOptions(method="mgs", gate_steps=args.gate_steps)
    job = CalibrationJob(
        model=args.model, data=args.data, images=args.images, out=out, limit=args.limit,
        eval_data=args.eval_data, eval_images=args.eval_images, eval_limit=args.eval_limit,
        sweep=args.sweep, sweep_cache_mb=cache_mb, method=method,
    )  # fmt: skip
    workflow.calibrate(job)
    return json.loads((out / "calibration.json").read_text())


def profiling_the_sweep(profile: cProfile.Profile):
    """workflow._sweep, run under `profile` (what a cached sweep point still costs, by function)."""
    sweep = workflow._sweep

    def profiled(*args, **kwargs):
        with profile:
            return sweep(*args, **kwargs)

    return profiled


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
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="pairs of runs, the order alternating; stage times are the medians (default: 1)",
    )  # fmt: skip
    parser.add_argument(
        "--profile-sweep", type=int, default=0, metavar="N",
        help="print the N most costly functions (cumulative, cProfile) of the cached runs' sweeps; their "
        "times then include cProfile's overhead, so leave it off for the speedups",
    )  # fmt: skip
    args = parser.parse_args()
    profile = cProfile.Profile()
    sweep = workflow._sweep
    uncached_runs, cached_runs = [], []
    with tempfile.TemporaryDirectory() as temporary:
        for index in range(args.repeat):
            # Alternating which goes first keeps a drift in the machine's speed out of the ratio.
            order = ((0, uncached_runs), (DEFAULT_SWEEP_CACHE_MB, cached_runs))
            for cache_mb, runs in order if index % 2 == 0 else order[::-1]:
                profiled = cache_mb > 0 and args.profile_sweep > 0
                workflow._sweep = profiling_the_sweep(profile) if profiled else sweep
                runs.append(run(args, cache_mb, Path(temporary) / f"{index}-{cache_mb}"))
    workflow._sweep = sweep
    uncached, cached = uncached_runs[-1], cached_runs[-1]
    print(f"{'stage':<14}{'no cache s':>12}{'cache s':>10}{'speedup':>9}   (medians of {args.repeat})")
    for stage in (*STAGES, "all three"):
        names = STAGES if stage == "all three" else (stage,)
        before, after = (
            statistics.median(sum(r["timings_s"][name] for name in names) for r in runs)
            for runs in (uncached_runs, cached_runs)
        )
        print(f"{stage:<14}{before:>12.1f}{after:>10.1f}{before / after:>8.2f}x")
    pairs = [
        u["timings_s"]["sweep_s"] / c["timings_s"]["sweep_s"]
        for u, c in zip(uncached_runs, cached_runs, strict=True)
    ]
    print(f"sweep speedup of each pair: {', '.join(f'{ratio:.2f}x' for ratio in pairs)}")
    print(f"cache: {cached['sweep_cache']}")
    points = len(cached["sweep"])
    same = all(r["sweep"] == uncached["sweep"] for r in (*uncached_runs, *cached_runs))
    print(f"sweep points identical: {'yes' if same else 'NO'} ({points} points)")
    for a, b in zip(uncached["sweep"], cached["sweep"], strict=True):
        print(f"  {a['value']}: AP {a['AP']:.3f} / {b['AP']:.3f}, encoder sparsity {a['encoder']:.4f} / "
              f"{b['encoder']:.4f}")  # fmt: skip

    if args.profile_sweep:
        print(f"the cached sweeps under cProfile (which slows them), {args.repeat} of them:")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile_sweep)


if __name__ == "__main__":
    main()
