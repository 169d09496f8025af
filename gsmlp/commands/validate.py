"""`gsmlp validate`: the same images through every backend; COCO mAP, parity against PyTorch, a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gsmlp.args import (
    BATCH,
    BLOCK_SIZE,
    POSITIVE,
    add_data_arguments,
    add_force_argument,
    add_model_argument,
    add_ort_op_argument,
    check_ranges,
    data_inputs,
    model_input,
)
from gsmlp.errors import GsmlpError
from gsmlp.paths import OutputPlan, companion_output, require_file, require_library

HELP = "COCO mAP parity across PyTorch, ONNX Runtime and TensorRT"
DESCRIPTION = """\
Preprocess the images once, run the identical arrays through each backend, evaluate each with pycocotools,
and compare every backend with PyTorch (the reference, in the mode the ONNX file was exported from):
  delta_AP        AP(backend) - AP(pytorch), COCO points 0-100
  max_abs_diff    largest absolute difference over logits and pred_boxes
  max_rel_diff    largest relative difference (against max(|reference|, 1e-3))
  max_scaled_diff largest |backend - pytorch| / max(|pytorch|, 1): absolute for boxes and small values,
                  relative for large logits, whose fp32 rounding grows with them; the bound applies here
  detection_agreement  PyTorch's top-100 queries per image: same label and box IoU >= 0.99 in the backend
  gate_decisions  gated files: the backend's gate decisions (read from each GatedSparseMLP node's input),
                  how many PyTorch took otherwise (flip_rate), and max_abs_diff measured with PyTorch
                  re-run under the backend's decisions: a token at its threshold may flip a block in
                  either direction, and one flip moves the outputs far more than rounding does
Parity passes when |delta_AP| <= 0.1, max_scaled_diff <= 1e-4 and flip_rate <= 1e-3 (fp32 files), or the
fp16 bounds (fp16 files; docs/VALIDATION.md says where each bound comes from); --tolerances FILE.toml
sets them per backend and dtype. The exit status is 1 when parity fails, so scripts can gate on it.

A backend that cannot run on this machine (tensorrt without TensorRT, pycuda or a GPU) is `skipped` with
the reason; one that crashes is `failed` with its error; the others still report.

The report (JSON, written atomically) holds `backends` (status ok|skipped|failed, reason, metrics,
latency_ms, ffn_sparsity and ffn_macs where the backend measures them), `parity` (per non-reference
backend) and the top-level `pass`. Beside it go REPORT.md (a readable report: backends, parity per metric,
detection agreement, output differences, per-layer sparsity), REPORT_ap.png and REPORT_sparsity.png.

example:
  gsmlp validate --model runs/detr-small-mgs --onnx runs/gated.onnx --data shapes-val \\
                 --backends pytorch,onnxruntime --report runs/report.json
  gsmlp validate --model runs/detr-small-mgs --onnx runs/gated.onnx --engine runs/gated.engine \\
                 --data shapes-val --backends pytorch,onnxruntime,tensorrt --report runs/report.json
"""

KNOWN_BACKENDS = ("pytorch", "onnxruntime", "tensorrt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser, what="images to validate on")
    group = parser.add_argument_group("validation")
    group.add_argument("--onnx", required=True, metavar="FILE.onnx", help="the file `gsmlp export` wrote")
    group.add_argument(
        "--backends",
        default="pytorch,onnxruntime",
        help=f"comma-separated, from {', '.join(KNOWN_BACKENDS)}; pytorch is the reference "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--engine",
        metavar="ENGINE",
        help="the TensorRT engine `gsmlp build` wrote from --onnx (tensorrt backend)",
    )
    group.add_argument(
        "--plugin-lib",
        metavar="FILE.so",
        help="the GatedSparseMLP plugin library (default: the one the engine was built with)",
    )
    group.add_argument(
        "--tolerances",
        metavar="FILE.toml",
        help="parity tolerances per backend and dtype (format: docs/VALIDATION.md; default: built-in)",
    )
    add_ort_op_argument(group)
    group.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per batch (default: 1)")
    group.add_argument(
        "--report",
        required=True,
        metavar="FILE.json",
        help="where to write the report (REPORT.md and the plots go beside it)",
    )
    add_force_argument(group)


def parse_backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN_BACKENDS]
    if unknown or not names:
        raise GsmlpError(
            f"--backends {text!r}: unknown {unknown or 'empty list'}; choose from {', '.join(KNOWN_BACKENDS)}"
        )
    if "pytorch" not in names:
        raise GsmlpError(
            "--backends must include pytorch: it is the reference every other backend is compared with"
        )
    return names


def _check_args(args: argparse.Namespace) -> None:
    """Numbers, input files and every output path, before the model is loaded."""
    from gsmlp.validation.report_files import VALIDATE_REPORT, companion_paths

    check_ranges(args, {"batch_size": BATCH, "limit": POSITIVE, "block_size": BLOCK_SIZE})
    files = {"--onnx": args.onnx, "--engine": args.engine, "--plugin-lib": args.plugin_lib,
             "--tolerances": args.tolerances}  # fmt: skip
    for option, path in files.items():
        if path is not None:
            # An engine or plugin that is absent only skips or fails the tensorrt backend, with the reason.
            require_file(path, option, must_exist=option not in ("--engine", "--plugin-lib"))
    if args.plugin_lib is not None and Path(args.plugin_lib).exists():
        require_library(args.plugin_lib, "--plugin-lib")
    plan = OutputPlan(force=args.force)
    plan.file(args.report, "--report", VALIDATE_REPORT)
    companion = companion_output(Path(args.report), VALIDATE_REPORT)
    for path, what in zip(
        companion_paths(args.report), ("markdown", "AP plot", "sparsity plot"), strict=True
    ):
        plan.file(path, f"--report's {what}", companion)
    plan.check({"--model": model_input(args.model), **data_inputs(args.data, args.images), **files})


def _print_summary(report: dict) -> None:
    for name, entry in report["backends"].items():
        ap = (entry["metrics"] or {}).get("AP")
        ran = f" [{entry['implementation']}]" if entry.get("implementation") else ""
        print(
            f"{name:12s} {entry['status']:8s} AP={ap if ap is None else round(ap, 2)}{ran} {entry['reason']}"
        )
    for name, entry in report["parity"].items():
        verdict = "pass" if entry["pass"] else "FAIL"
        delta, diff, scaled = entry["delta_AP"], entry["max_abs_diff"], entry["max_scaled_diff"]
        gates = entry.get("gate_decisions")
        flips = f" gate flips={gates['flipped']}/{gates['decisions']} (pinned)" if gates else ""
        print(
            f"{name:12s} parity {verdict}: delta_AP={delta} max_abs_diff={diff:.3g} "
            f"max_scaled_diff={scaled:.3g}{flips}"
        )


def run(args: argparse.Namespace) -> int:
    from gsmlp.args import load_model_from_args
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.runtime.ort_session import library_status, op_library
    from gsmlp.validation.report_files import write_report_set
    from gsmlp.validation.session import build_report
    from gsmlp.validation.tolerances import load_tolerances

    names = parse_backends(args.backends)
    _check_args(args)
    tolerances = load_tolerances(args.tolerances) if args.tolerances else None
    if "onnxruntime" in names and args.ort_op == "auto" and op_library() is None:
        print(library_status())
    loaded = load_model_from_args(args)
    dataset = resolve_dataset(args.data, args.images)
    report = build_report(
        loaded,
        args.onnx,
        dataset,
        names,
        limit=args.limit,
        batch_size=args.batch_size,
        engine=args.engine,
        plugin_lib=args.plugin_lib,
        tolerances=tolerances,
        ort_op=args.ort_op,
    )
    write_report_set(report, args.report)
    _print_summary(report)
    print(f"report: {args.report}")
    if not report["pass"]:
        from gsmlp.validation.summary import failures

        print(f"error: validation failed ({args.report}): {'; '.join(failures(report))}", file=sys.stderr)
        return 1
    return 0
