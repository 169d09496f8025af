"""`gsmlp bench ffn`: the gated kernel against the dense FFN, same device, dtype and threads."""

from __future__ import annotations

import argparse
import os
import platform

import torch
from tqdm import tqdm

from gsmlp.args import BLOCK_SIZE, POSITIVE, THREADS, Range, add_force_argument, check_ranges, model_input
from gsmlp.errors import GsmlpError
from gsmlp.io import write_json_atomic
from gsmlp.paths import OutputPlan, json_output

BENCH_REPORT = json_output("a report written by gsmlp bench ffn", ("machine", "cases"))

HELP = "benchmark the sparse kernels against the dense FFN"
DESCRIPTION = """\
Times the GatedSparseMLP kernel (micro-gate included) against the dense FFN
F.linear -> relu -> F.linear on the same device, dtype and thread count, in one run, and writes
one JSON record per case (tokens, d_model, hidden, block_size, sparsity, dtype, device, threads,
dense_ms, sparse_ms, speedup). Times are medians of --repeat runs, dense and sparse interleaved.

Cases (default): the DETR-R50 encoder FFN (850 tokens, 256 -> 2048 -> 256) and the Deformable-DETR-R50
encoder FFN (20000 tokens, 256 -> 1024 -> 256), each at block sparsity 0, 0.5, 0.8, 0.9, 0.95, with a
random micro-gate whose threshold is set so each token draws its own mask at that sparsity.
With --masks-from, each gated FFN of a calibrated checkpoint is timed on the tokens it sees on --data.

Examples:
  gsmlp bench ffn --report runs/bench_cpu.json
  gsmlp bench ffn --device cuda --dtype fp16 --report runs/bench_gpu.json
  gsmlp bench ffn --masks-from runs/detr-small-mgs --data shapes-images/ --report runs/bench_real.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="WHAT", title="benchmarks", required=True)
    ffn = sub.add_parser(
        "ffn", help="gated kernel vs dense FFN", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ffn.add_argument("--report", required=True, metavar="FILE.json", help="where to write the JSON cases")
    ffn.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    ffn.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="default: fp32")
    ffn.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads for both torch and the kernel (default: torch.get_num_threads())",
    )  # fmt: skip
    ffn.add_argument(
        "--repeat", type=int, default=10, metavar="N", help="timed runs per case (median; default 10)"
    )
    ffn.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs first (default 2)")
    ffn.add_argument("--block-size", type=int, default=32, metavar="B", help="neurons per block (default 32)")
    ffn.add_argument(
        "--rank", type=int, default=32, metavar="R", help="rank of the random micro-gate (default 32)"
    )
    ffn.add_argument(
        "--shapes", default="detr,deformable", metavar="LIST",
        help="comma list of detr (850x256x2048), deformable (20000x256x1024); default both",
    )  # fmt: skip
    ffn.add_argument(
        "--sparsity", default="0,0.5,0.8,0.9,0.95", metavar="LIST",
        help="comma list of target block sparsities in [0, 1) (default 0,0.5,0.8,0.9,0.95)",
    )  # fmt: skip
    ffn.add_argument(
        "--masks-from", metavar="MODEL",
        help="a calibrated gated checkpoint: time each of its gated FFNs on the tokens it sees on --data",
    )  # fmt: skip
    ffn.add_argument(
        "--data", metavar="DIR", help="with --masks-from: a folder of images (searched recursively)"
    )
    ffn.add_argument(
        "--images", type=int, default=2, metavar="N", help="with --masks-from: images to run (default 2)"
    )
    add_force_argument(ffn)


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GsmlpError(f"{option} {text!r}: give comma-separated numbers, e.g. 0,0.5,0.9") from None
    bad = [v for v in values if not 0.0 <= v < 1.0]  # NaN fails the comparison too
    if not values or bad:
        raise GsmlpError(f"{option} {text!r}: every sparsity must lie in [0, 1)")
    return values


def _check(args: argparse.Namespace) -> None:
    from gsmlp.kernels.bench import SHAPES

    check_ranges(args, {"repeat": POSITIVE, "warmup": Range(0), "block_size": BLOCK_SIZE,
                        "rank": Range(1, 4096), "images": POSITIVE, "threads": THREADS})  # fmt: skip
    unknown = [s for s in args.shapes.split(",") if s not in SHAPES]
    if unknown:
        raise GsmlpError(f"--shapes: unknown {unknown[0]!r}; choose from {', '.join(SHAPES)}")
    if bool(args.masks_from) != bool(args.data):
        raise GsmlpError("--masks-from and --data go together: a gated checkpoint and a folder of its images")
    if not args.masks_from:
        _floats(args.sparsity, "--sparsity")
    plan = OutputPlan(force=args.force)
    plan.file(args.report, "--report", BENCH_REPORT)
    plan.check({"--masks-from": model_input(args.masks_from), "--data": args.data})


def print_table(cases: list) -> None:
    header = (
        f"{'case':<24}{'tokens':>7}{'hidden':>7}{'B':>4}{'sparsity':>9}"
        f"{'dense ms':>10}{'sparse ms':>10}{'speedup':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in cases:
        print(
            f"{c.name:<24}{c.tokens:>7}{c.hidden:>7}{c.block_size:>4}{c.sparsity:>9.3f}"
            f"{c.dense_ms:>10.2f}{c.sparse_ms:>10.2f}{c.speedup:>8.2f}x"
        )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    from gsmlp.kernels import bench, recorded

    _check(args)
    device, dtype = torch.device(args.device), bench.DTYPES[args.dtype]
    bench.check_runnable(device, dtype)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    timing = dict(threads=threads, repeat=args.repeat, warmup=args.warmup)
    if args.masks_from:
        layers = recorded.record_from_checkpoint(args.masks_from, args.data, args.images)
        bar = tqdm(layers, desc="bench ffn (recorded)", unit="layer")
        cases = [
            bench.measure(
                r.name,
                r.layer.to(device, dtype),
                r.inputs.to(device, dtype),
                float(r.layer.threshold),
                **timing,
            )  # fmt: skip
            for r in bar
        ]
    else:
        shapes, sparsities = args.shapes.split(","), _floats(args.sparsity, "--sparsity")
        with tqdm(total=len(shapes) * len(sparsities), desc="bench ffn", unit="case") as bar:
            cases = bench.synthetic_cases(
                device=device, dtype=dtype, block_size=args.block_size, rank=args.rank, shapes=shapes,
                sparsities=sparsities, progress=lambda _: bar.update(), **timing,
            )  # fmt: skip
    print_table(cases)
    machine = {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__}
    write_json_atomic(args.report, {"machine": machine, "cases": [c.as_dict() for c in cases]})
    print(f"wrote {args.report}")
    return 0
