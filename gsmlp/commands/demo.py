"""`gsmlp demo`: calibrate, export, build and validate the built-in model; one summary table."""

from __future__ import annotations

import argparse
import sys

from gsmlp.args import (
    POSITIVE,
    DeprecatedSpelling,
    Range,
    add_force_argument,
    add_ort_op_argument,
    check_ranges,
    data_inputs,
    from_args,
    model_input,
)
from gsmlp.validation.demo import DemoOptions

DEFAULTS = DemoOptions()  # the library's defaults are the command's

HELP = "the main job: calibrate, export, build, validate on the built-in model"
DESCRIPTION = """\
Everything gsmlp does, on one small model, in one command (under a minute on a quiet 2-core CPU):

  1. calibrate MGS gates on shapes-train (--calib-limit images)       -> DIR/checkpoint/
  2. export the dense and the gated detector to ONNX                    -> DIR/dense.onnx, DIR/gated.onnx
  3. build dense and gated TensorRT engines, if TensorRT and a GPU are present (else the reason is recorded)
  4. validate every backend (pytorch, onnxruntime, tensorrt) on shapes-val (--limit images), dense and gated
  5. print one table, backend x {dense, gated}: AP, FFN sparsity, FFN MAC ratio, latency, parity

DIR/report.json follows the `gsmlp validate` format (backends, parity, pass for the gated model) and adds
`modes` (the full validate report of each of dense and gated), `table` and `steps`. DIR is written
atomically: an interrupted demo leaves no DIR (and an earlier DIR untouched). An existing DIR is replaced
only if it holds an earlier demo output (report.json, checkpoint/, ...); anything else needs --force.
The exit status is 1 when a backend fails parity or crashes.

examples:
  gsmlp demo --out runs/demo
  gsmlp demo --model deformable-detr-small --out runs/demo-deformable --limit 20
  ./scripts/demo.sh --out runs/demo          (creates .venv first, then runs this)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULTS.model, help="a built-in or dense detector to gate (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default=str(DEFAULTS.out), metavar="DIR", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--calib-limit",
        type=int,
        default=DEFAULTS.calib_limit,
        metavar="N",
        help="shapes-train images to calibrate on (default: %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULTS.limit,
        metavar="N",
        help="shapes-val images to validate on (default: %(default)s)",
    )
    # The spellings of the previous release, one idea named like every other command's --limit.
    for old, dest in (("--calib-images", "calib_limit"), ("--val-images", "limit")):
        parser.add_argument(old, type=int, dest=dest, action=DeprecatedSpelling, help=argparse.SUPPRESS)
    parser.add_argument(
        "--target-sparsity",
        type=float,
        default=DEFAULTS.target_sparsity,
        metavar="S",
        help="MGS target sparsity (default: %(default)s)",
    )
    parser.add_argument(
        "--gate-steps",
        type=int,
        default=DEFAULTS.gate_steps,
        metavar="N",
        help="Adam steps per gate (default: %(default)s, kept short)",
    )
    parser.add_argument(
        "--tolerances", metavar="FILE.toml", help="parity tolerances (format: docs/VALIDATION.md)"
    )
    parser.add_argument(
        "--plugin-lib", metavar="FILE.so", help="GatedSparseMLP plugin library for the TensorRT builds"
    )
    add_ort_op_argument(parser)
    add_force_argument(parser)


def check_args(args: argparse.Namespace) -> None:
    """Numbers, input files and the output folder, before anything runs."""
    from gsmlp.paths import OutputPlan, require_file, require_library
    from gsmlp.validation.demo import CALIBRATION_DATA, DEMO_OUTPUT, VALIDATION_DATA

    check_ranges(args, {"calib_limit": POSITIVE, "limit": POSITIVE, "gate_steps": POSITIVE,
                        "target_sparsity": Range(0.0, 1.0, low_open=True, high_open=True)})  # fmt: skip
    if args.tolerances is not None:
        require_file(args.tolerances, "--tolerances")
    if args.plugin_lib is not None:
        require_library(args.plugin_lib, "--plugin-lib")
    plan = OutputPlan(force=args.force)
    plan.folder(args.out, "--out", DEMO_OUTPUT)
    inputs = {"--model": model_input(args.model), "--tolerances": args.tolerances,
              "--plugin-lib": args.plugin_lib}  # fmt: skip
    splits = [data_inputs(name, None)["--data"] for name in (CALIBRATION_DATA, VALIDATION_DATA)]
    plan.check({**inputs, "(the generated data)": splits})


def run(args: argparse.Namespace) -> int:
    from gsmlp.runtime.ort_session import library_status, op_library
    from gsmlp.validation.demo import run_demo
    from gsmlp.validation.summary import format_table

    check_args(args)
    if args.ort_op == "auto" and op_library() is None:
        print(library_status())
    options = from_args(DemoOptions, args)
    report = run_demo(options)
    print(format_table(report["table"]))
    print(f"report: {args.out}/report.json  ({'pass' if report['pass'] else 'FAIL'})")
    if not report["pass"]:
        from gsmlp.validation.summary import failures

        why = [f"{mode}: {clause}" for mode, mode_report in report["modes"].items()
               for clause in failures(mode_report)]  # fmt: skip
        print(f"error: the demo failed ({args.out}/report.json): {'; '.join(why)}", file=sys.stderr)
        return 1
    return 0
