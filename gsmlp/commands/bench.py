"""`gsmlp bench ffn`: the gated kernel against the dense FFN, same device, dtype and threads (in torch, or in
ONNX Runtime through the gsmlp op library); `gsmlp bench msda`: the MultiScaleDeformableAttention op alone
against what runs without it; `gsmlp bench model`: the whole detector, dense and gated, per backend."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch
from tqdm import tqdm

from gsmlp.args import (
    BLOCK_SIZE,
    POSITIVE,
    THREADS,
    DeprecatedSpelling,
    Range,
    add_data_arguments,
    add_device_argument,
    add_force_argument,
    check_ranges,
    data_inputs,
    load_model_from_args,
    model_input,
)
from gsmlp.errors import GsmlpError
from gsmlp.io import write_json_atomic
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE, KERNEL_BENCH_BLOCK_SIZE
from gsmlp.paths import OutputPlan, json_output

BENCH_REPORT = json_output("a report written by gsmlp bench ffn", ("machine", "cases"))
MODEL_BENCH_REPORT = json_output("a report written by gsmlp bench model", ("machine", "backends", "size"))
MSDA_BENCH_REPORT = json_output("a report written by gsmlp bench msda", ("machine", "msda_cases"))

HELP = "benchmark the sparse kernels against the dense FFN, the sampling op alone, and the whole model"
DESCRIPTION = """\
Times the GatedSparseMLP kernel (micro-gate included) against the dense FFN
F.linear -> relu -> F.linear on the same device, dtype and thread count, in one run, and writes
one JSON record per case (tokens, d_model, hidden, block_size, sparsity, dtype, device, threads,
dense_ms, sparse_ms, speedup). Times are medians of --repeat runs, dense and sparse interleaved.

Cases (default): the DETR-R50 encoder FFN (850 tokens, 256 -> 2048 -> 256) and the Deformable-DETR-R50
encoder FFN (20000 tokens, 256 -> 1024 -> 256), each at block sparsity 0, 0.5, 0.8, 0.9, 0.95, with a
random micro-gate whose threshold is set so each token draws its own mask at that sparsity.
With --masks-from, each gated FFN of a calibrated checkpoint is timed on the tokens it sees on --data.

--backend onnxruntime times the same cases in ONNX Runtime instead: single-node graphs, the GatedSparseMLP
op through the gsmlp op library against the dense MatMul-Add-Relu-MatMul-Add subgraph, in sessions with the
same intra-op threads and dtype (CPU provider), interleaved. It needs the op library (plugins/onnxruntime/).

Examples:
  gsmlp bench ffn --report runs/bench_cpu.json
  gsmlp bench ffn --backend onnxruntime --report runs/bench_ort.json
  gsmlp bench ffn --device cuda --dtype fp16 --report runs/bench_gpu.json
  gsmlp bench ffn --masks-from runs/detr-small-mgs --data shapes-images/ --report runs/bench_real.json
"""


MSDA_DESCRIPTION = """\
Times the MultiScaleDeformableAttention op alone (Deformable DETR's multi-scale sampling, docs/op_spec.md)
against what runs without it, each pair interleaved in one run, same threads and dtype:
  onnxruntime  one node through the gsmlp op library vs the same node through its ONNX local-function body
               (one GridSample per level), two CPU sessions with the same intra-op threads
  pytorch      the torch op gsmlp::multi_scale_deformable_attention vs transformers' pure-PyTorch
               MultiScaleDeformableAttention (grid_sample), the same torch threads
and writes one JSON record per shape and backend (reference_ms, op_ms, speedup = reference / op, and the
largest difference between the two outputs). Times are medians of --repeat runs.

Shapes: Deformable-DETR-R50 at 800 x 800 (levels 100x100, 50x50, 25x25, 13x13; 8 heads of 32 channels,
4 levels, 4 points): the encoder (Lq = S = 13,294 queries) and the decoder (300 queries). Sampling locations
lie a few pixels around each query's reference point, as the model places them.

Examples:
  gsmlp bench msda --report runs/bench_msda.json
  gsmlp bench msda --shapes encoder --backends onnxruntime --threads 2 --report runs/bench_msda_ort.json
"""


MODEL_DESCRIPTION = """\
Times the whole detector, dense and gated, per backend, on the same preprocessed images (batch 1), and
writes median ms per image and the speedup (dense / gated) per backend:
  backends.<name>.{dense_ms, gated_ms, speedup, implementation}
pytorch runs the gated checkpoint in dense mode and in its gated mode (the gsmlp CPU kernel serves the gated
layers where it can); onnxruntime runs a dense and a gated ONNX file (--onnx-dense/--onnx-gated, or both
exported now at a static --height x --width, default the model's longest edge), the gated one through the
gsmlp op library (--ort-op). Per image every variant runs once in turn, so load changes hit all alike; the
first --warmup images are not counted. All backends use the same --threads.

--ort-threading both also times the op library on its own OpenMP threads instead of ONNX Runtime's
(gated_openmp_ms): the measurement of why the library uses ONNX Runtime's threads.

Deformable DETR with the MultiScaleDeformableAttention op adds a baseline per backend in the same turns:
the dense model without the op (PyTorch on transformers' sampling module; ONNX Runtime on a dense file
exported with --sampling inline, or --onnx-baseline FILE). baseline_ms and speedup_vs_baseline (baseline /
gated) say what both ops give together; backends.<name>.variants.<variant>.sampling names what sampled.

Examples:
  gsmlp bench model --model runs/detr-small-mgs --backends pytorch,onnxruntime --report runs/bench_model.json
  gsmlp bench model --model runs/r50-mgs --height 800 --width 800 --limit 12 \\
      --data ../shared/data/coco_val2017_subset/annotations/instances_val2017.json \\
      --images ../shared/data/coco_val2017_subset/val2017 \\
      --backends pytorch,onnxruntime --report runs/bench_r50.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="WHAT", title="benchmarks", required=True)
    ffn = sub.add_parser(
        "ffn", help="gated kernel vs dense FFN", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _add_ffn_arguments(ffn)
    msda = sub.add_parser(
        "msda", help="the MultiScaleDeformableAttention op alone vs its ONNX body and transformers' module",
        description=MSDA_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _add_msda_arguments(msda)
    model = sub.add_parser(
        "model", help="the whole model, dense vs gated, per backend", description=MODEL_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _add_model_arguments(model)


def _add_model_arguments(model: argparse.ArgumentParser) -> None:
    from gsmlp.args import add_ort_op_argument

    model.add_argument(
        "--model", required=True, metavar="GATED_CKPT", help="a gated checkpoint (gsmlp calibrate)"
    )
    model.add_argument("--report", required=True, metavar="FILE.json", help="where to write the JSON")
    add_data_arguments(model, what="images to time", required=False, default="shapes-val", limit=20)
    model.add_argument(
        "--backends", default="pytorch,onnxruntime", metavar="LIST",
        help="comma list of pytorch, onnxruntime (default: both)",
    )  # fmt: skip
    model.add_argument(
        "--warmup", type=int, default=2, metavar="N", help="first images not timed (default 2)"
    )
    model.add_argument(
        "--threads", type=int, metavar="N", help="threads for every backend (default: torch's)"
    )
    model.add_argument(
        "--height", type=int, metavar="H", help="height of exported files (default: longest edge)"
    )
    model.add_argument(
        "--width", type=int, metavar="W", help="width of exported files (default: longest edge)"
    )
    model.add_argument("--onnx-dense", type=Path, metavar="FILE", help="a dense ONNX (gsmlp export --dense)")
    model.add_argument(
        "--onnx-gated", type=Path, metavar="FILE", help="the gated ONNX of the same checkpoint"
    )
    model.add_argument(
        "--onnx-baseline", type=Path, metavar="FILE",
        help="Deformable DETR: the dense ONNX with inline sampling (gsmlp export --dense --sampling inline)",
    )  # fmt: skip
    add_ort_op_argument(model)
    model.add_argument(
        "--ort-threading", choices=("onnxruntime", "both"), default="onnxruntime",
        help="both: also time the op library on OpenMP threads (gated_openmp_ms); default onnxruntime",
    )  # fmt: skip
    add_force_argument(model)


def _add_msda_arguments(msda: argparse.ArgumentParser) -> None:
    msda.add_argument("--report", required=True, metavar="FILE.json", help="where to write the JSON cases")
    msda.add_argument(
        "--shapes", default="encoder,decoder", metavar="LIST",
        help="comma list of encoder (13,294 queries), decoder (300 queries); default both",
    )  # fmt: skip
    msda.add_argument(
        "--backends", default="onnxruntime,pytorch", metavar="LIST",
        help="comma list of onnxruntime (library vs function body), pytorch (torch op vs transformers); "
        "default both",
    )  # fmt: skip
    msda.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="default: fp32")
    msda.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="threads of every session and of torch (default: torch.get_num_threads())",
    )  # fmt: skip
    msda.add_argument(
        "--repeat", type=int, default=10, metavar="N", help="timed runs per case (median; default 10)"
    )
    msda.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs first (default 2)")
    add_force_argument(msda)


def _add_ffn_arguments(ffn: argparse.ArgumentParser) -> None:
    ffn.add_argument("--report", required=True, metavar="FILE.json", help="where to write the JSON cases")
    add_device_argument(ffn, "where the kernel and the dense FFN run: cpu (default) or cuda")
    ffn.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="default: fp32")
    ffn.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads for both torch and the kernel (default: torch.get_num_threads())",
    )  # fmt: skip
    ffn.add_argument(
        "--repeat", type=int, default=10, metavar="N", help="timed runs per case (median; default 10)"
    )
    ffn.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs first (default 2)")
    ffn.add_argument(
        "--block-size", type=int, default=KERNEL_BENCH_BLOCK_SIZE, metavar="B",
        help=f"neurons per block (default {KERNEL_BENCH_BLOCK_SIZE}, the kernels' tuning point; calibrated "
        f"models default to {DEFAULT_BLOCK_SIZE})",
    )  # fmt: skip
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
        "--limit", type=int, default=2, metavar="N", help="with --masks-from: images to run (default 2)"
    )
    # --images was this command's count in the previous release; elsewhere --images is a folder.
    ffn.add_argument("--images", type=int, dest="limit", action=DeprecatedSpelling, help=argparse.SUPPRESS)
    ffn.add_argument(
        "--backend", choices=("pytorch", "onnxruntime"), default="pytorch",
        help="pytorch: the torch op vs torch's dense FFN (default); onnxruntime: the op library vs ONNX "
        "Runtime's dense subgraph",
    )  # fmt: skip
    ffn.add_argument(
        "--ort-threading", choices=("onnxruntime", "openmp"), default="onnxruntime",
        help="--backend onnxruntime: the library's kernel on ONNX Runtime's threads (default) or OpenMP's",
    )  # fmt: skip
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
    from gsmlp.validation.ffn_bench import SHAPES

    check_ranges(args, {"repeat": POSITIVE, "warmup": Range(0), "block_size": BLOCK_SIZE,
                        "rank": Range(1, 4096), "limit": POSITIVE, "threads": THREADS})  # fmt: skip
    unknown = [s for s in args.shapes.split(",") if s not in SHAPES]
    if unknown:
        raise GsmlpError(f"--shapes: unknown {unknown[0]!r}; choose from {', '.join(SHAPES)}")
    if bool(args.masks_from) != bool(args.data):
        raise GsmlpError("--masks-from and --data go together: a gated checkpoint and a folder of its images")
    if args.backend == "onnxruntime" and (args.device != "cpu" or args.masks_from):
        raise GsmlpError(
            "--backend onnxruntime times the synthetic cases on the CPU provider: drop --device cuda and "
            "--masks-from (the CUDA provider needs onnxruntime-gpu and a GPU; see plugins/onnxruntime/)"
        )
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


def _run_onnxruntime(args: argparse.Namespace, threads: int) -> list:
    from gsmlp.validation import ffn_bench_onnxruntime

    ffn_bench_onnxruntime.check_runnable()
    shapes, sparsities = args.shapes.split(","), _floats(args.sparsity, "--sparsity")
    with tqdm(total=len(shapes) * len(sparsities), desc="bench ffn (onnxruntime)", unit="case") as bar:
        return ffn_bench_onnxruntime.synthetic_cases(
            dtype=args.dtype, threads=threads, repeat=args.repeat, warmup=args.warmup,
            block_size=args.block_size, rank=args.rank, shapes=shapes, sparsities=sparsities,
            progress=lambda _: bar.update(), threading=args.ort_threading,
        )  # fmt: skip


def _machine() -> dict:
    import onnxruntime

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    runners = {"model": _run_model, "msda": _run_msda, "ffn": _run_ffn}
    return runners[args.bench](args)


def _choices(text: str, option: str, allowed) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if not values or unknown:
        raise GsmlpError(f"{option} {text!r}: choose from {', '.join(allowed)} (comma-separated)")
    return values


def _run_msda(args: argparse.Namespace) -> int:
    from gsmlp.validation import msda_bench

    shapes = _choices(args.shapes, "--shapes", msda_bench.SHAPES)
    backends = _choices(args.backends, "--backends", msda_bench.BACKENDS)
    check_ranges(args, {"repeat": POSITIVE, "warmup": Range(0), "threads": THREADS})
    plan = OutputPlan(force=args.force)
    plan.file(args.report, "--report", MSDA_BENCH_REPORT)
    plan.check({})
    msda_bench.check_runnable(backends, args.dtype)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    with tqdm(total=len(shapes) * len(backends), desc="bench msda", unit="case") as bar:
        cases = msda_bench.run_cases(
            shapes=shapes, backends=backends, dtype=args.dtype, threads=threads, repeat=args.repeat,
            warmup=args.warmup, progress=lambda _: bar.update(),
        )  # fmt: skip
    print_msda_table(cases)
    write_json_atomic(args.report, {"machine": _machine(), "msda_cases": [c.as_dict() for c in cases]})
    print(f"wrote {args.report}")
    return 0


def print_msda_table(cases: list) -> None:
    columns = f"{'ref ms':>10}{'op ms':>9}{'speedup':>9}  {'max diff':>9}"
    header = f"{'shape':<9}{'backend':<13}{'queries':>8}{columns}  op vs"
    print(header)
    print("-" * len(header))
    for c in cases:
        print(
            f"{c.shape:<9}{c.backend:<13}{c.queries:>8}{c.reference_ms:>10.2f}{c.op_ms:>9.2f}{c.speedup:>8.2f}x"
            f"  {c.max_abs_diff:>9.1e}  {c.reference}"
        )


def _run_model(args: argparse.Namespace) -> int:
    from gsmlp.validation.model_bench import ModelBenchOptions, run_model_bench

    options = ModelBenchOptions(
        model=args.model,
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        data=args.data,
        images_dir=args.images,
        limit=args.limit,
        warmup=args.warmup,
        threads=args.threads,
        height=args.height,
        width=args.width,
        onnx_dense=args.onnx_dense,
        onnx_gated=args.onnx_gated,
        onnx_baseline=args.onnx_baseline,
        ort_op=args.ort_op,
        ort_threading=args.ort_threading,
    )
    check_ranges(args, {"limit": POSITIVE, "warmup": Range(0), "threads": THREADS, "height": POSITIVE,
                        "width": POSITIVE})  # fmt: skip
    plan = OutputPlan(force=args.force)
    plan.file(args.report, "--report", MODEL_BENCH_REPORT)
    plan.check({"--model": model_input(args.model), **data_inputs(args.data, args.images),
                "--onnx-dense": args.onnx_dense, "--onnx-gated": args.onnx_gated,
                "--onnx-baseline": args.onnx_baseline})  # fmt: skip
    loaded = load_model_from_args(args)
    with tqdm(total=args.limit, desc="bench model", unit="image") as bar:
        report = run_model_bench(options, progress=bar.update, loaded=loaded)
    report["machine"] = _machine()
    print_model_table(report)
    write_json_atomic(args.report, report)
    print(f"wrote {args.report}")
    return 0


def print_model_table(report: dict) -> None:
    print(f"{report['model']}: {report['images_timed']} images of {report['size'][0]}x{report['size'][1]}, "
          f"{report['threads']} threads, median ms per image")  # fmt: skip
    header = f"{'backend':<13}{'dense ms':>10}{'gated ms':>10}{'speedup':>9}  gated runs on"
    print(header)
    print("-" * len(header))
    for name, entry in report["backends"].items():
        print(f"{name:<13}{entry['dense_ms']:>10.2f}{entry['gated_ms']:>10.2f}{entry['speedup']:>8.2f}x  "
              f"{entry['implementation']}")  # fmt: skip
        if "baseline_ms" in entry:
            sampling = entry["variants"]["dense_baseline"]["sampling"]
            baseline = f"{entry['baseline_ms']:>10.2f}{'':>10}{entry['speedup_vs_baseline']:>8.2f}x"
            print(f"{'  (baseline)':<13}{baseline}  gated against the dense model sampling {sampling}")
        if "gated_openmp_ms" in entry:
            openmp = f"{entry['gated_openmp_ms']:>10.2f}{entry['speedup_openmp']:>8.2f}x"
            print(f"{'  (OpenMP)':<13}{'':>10}{openmp}  the same library on its own OpenMP threads")


def _run_ffn(args: argparse.Namespace) -> int:
    from gsmlp.validation import ffn_bench, ffn_inputs

    _check(args)
    device, dtype = torch.device(args.device), ffn_bench.DTYPES[args.dtype]
    ffn_bench.check_runnable(device, dtype)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    timing = dict(threads=threads, repeat=args.repeat, warmup=args.warmup)
    if args.backend == "onnxruntime":
        cases = _run_onnxruntime(args, threads)
    elif args.masks_from:
        layers = ffn_inputs.record_from_checkpoint(
            load_model_from_args(args, "masks_from"), args.masks_from, args.data, args.limit
        )
        bar = tqdm(layers, desc="bench ffn (recorded)", unit="layer")
        cases = [
            ffn_bench.measure(
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
            cases = ffn_bench.synthetic_cases(
                device=device, dtype=dtype, block_size=args.block_size, rank=args.rank, shapes=shapes,
                sparsities=sparsities, progress=lambda _: bar.update(), **timing,
            )  # fmt: skip
    if args.backend == "onnxruntime":
        print(
            "onnxruntime: dense = MatMul-Add-Relu-MatMul-Add; sparse = GatedSparseMLP in the gsmlp op library"
        )
    print_table(cases)
    write_json_atomic(args.report, {"machine": _machine(), "cases": [c.as_dict() for c in cases]})
    print(f"wrote {args.report}")
    return 0
