"""`gsmlp validate`: the same images through every backend; COCO mAP, parity against PyTorch, a report."""

from __future__ import annotations

import argparse
import sys
import textwrap
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
from gsmlp.validation.backend_names import BACKENDS, REFERENCE
from gsmlp.validation.tolerances import DEFAULT_REFERENCE_IMAGES, DEFAULT_TOLERANCES, QUANTILE_TAIL

HELP = "COCO mAP parity across PyTorch, ONNX Runtime and TensorRT"
_FP32, _FP16 = DEFAULT_TOLERANCES["fp32"], DEFAULT_TOLERANCES["fp16"]
_JUDGED = {
    "precision": "the numbers: on the reference images (--fp64-images), PyTorch is re-run in float64 and "
    "each output's error |backend - fp64| / max(|fp64|, 1) is set against PyTorch's own error in the file's "
    "dtype (fp32, or torch.autocast fp16 for fp16 files), the floor every correct implementation sits on. It "
    f"passes when the {_FP32.quantile:g} quantile and the maximum of the backend's error are within "
    f"{_FP32.quantile_factor:g}x and {_FP32.max_factor:g}x of PyTorch's (both raised to "
    f"{_FP32.floor_ulps:g} unit(s) in the last place; the quantile only where {QUANTILE_TAIL} or more "
    "elements lie beyond it, so validate on 10 images or more). A fixed bound on a maximum cannot work: the "
    "maximum only grows with the images, for a correct backend as for PyTorch itself; the ratio does not",
    "delta_AP": f"AP(backend) - AP(pytorch), COCO points 0-100: within {_FP32.delta_ap:g} (fp32 files) or "
    f"{_FP16.delta_ap:g} (fp16)",
    "gate_decisions": "gated files: each GatedSparseMLP node reports its block decisions; PyTorch (fp32 and "
    "fp64) is re-run under them, and the decisions PyTorch took otherwise (flip_rate) must stay within "
    f"{_FP32.max_gate_flip_rate:g} (fp16: {_FP16.max_gate_flip_rate:g}). A token at its threshold may flip a "
    "block in either direction, and one flip moves the outputs far more than rounding does",
}
_JUDGED_TEXT = "\n".join(
    textwrap.fill(text, 108, initial_indent=f"  {name:16s}", subsequent_indent=" " * 18)
    for name, text in _JUDGED.items()
)
DESCRIPTION = f"""\
Preprocess the images once, run the identical arrays through each backend, evaluate each with pycocotools,
and compare every backend with PyTorch (the reference, in the mode the ONNX file was exported from).

How a backend is judged (docs/VALIDATION.md):
{_JUDGED_TEXT}
Reported beside them, not judged: max_abs_diff / max_rel_diff / max_scaled_diff against PyTorch fp32 over
every image, and detection_agreement (PyTorch's top-100 queries per image: same label, box IoU >= 0.99).
--tolerances FILE.toml sets the factors and bounds per backend and dtype. The exit status is 1 when parity
fails, so scripts can gate on it.

A backend that cannot run on this machine (tensorrt without TensorRT, pycuda or a GPU) is `skipped` with
the reason; one that crashes is `failed` with its error; the others still report. When every backend
besides pytorch was skipped, nothing was compared: the run does not pass.

The report (JSON, written atomically) holds `backends` (status ok|skipped|failed, reason, metrics,
latency_ms, ffn_sparsity and ffn_macs where the backend measures them), `parity` (per non-reference
backend, with `precision`: error, floor and ratio per output) and the top-level `pass`. Beside it go
REPORT.md (a readable report: backends, parity per metric, the precision table, detection agreement,
output differences, per-layer sparsity), REPORT_ap.png and REPORT_sparsity.png.

example:
  gsmlp validate --model runs/detr-small-mgs --onnx runs/gated.onnx --data shapes-val \\
                 --backends pytorch,onnxruntime --report runs/report.json
  gsmlp validate --model runs/detr-small-mgs --onnx runs/gated.onnx --engine runs/gated.engine \\
                 --data shapes-val --backends pytorch,onnxruntime,tensorrt --report runs/report.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser, what="images to validate on")
    group = parser.add_argument_group("validation")
    group.add_argument("--onnx", required=True, metavar="FILE.onnx", help="the file `gsmlp export` wrote")
    group.add_argument(
        "--backends",
        default="pytorch,onnxruntime",
        help=f"comma-separated, from {', '.join(BACKENDS)}; {REFERENCE} is the reference "
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
        "--fp64-images",
        type=_reference_images,
        default=DEFAULT_REFERENCE_IMAGES,
        metavar="N|all",
        help="how many images the fp64 reference runs on (2-4x an fp32 pass each): all of them when the "
        "set has at most N, else N spread evenly over it; the report says how many "
        f"(default: {DEFAULT_REFERENCE_IMAGES})",
    )
    group.add_argument(
        "--report",
        required=True,
        metavar="FILE.json",
        help="where to write the report (REPORT.md and the plots go beside it)",
    )
    add_force_argument(group)


def _reference_images(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'all', got {text!r}")
    return value


def parse_backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise GsmlpError(
            f"--backends {text!r}: unknown {unknown or 'empty list'}; choose from {', '.join(BACKENDS)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise GsmlpError(f"--backends {text!r} names {', '.join(repeated)} more than once; name each once")
    if REFERENCE not in names:
        raise GsmlpError(
            f"--backends must include {REFERENCE}: it is the reference every other backend is compared with"
        )
    if len(names) == 1:
        raise GsmlpError(
            f"--backends {text!r} holds only the reference: name a backend to compare with it, "
            f"from {', '.join(name for name in BACKENDS if name != REFERENCE)}"
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
    from gsmlp.validation.summary import precision_line

    for name, entry in report["backends"].items():
        ap = (entry["metrics"] or {}).get("AP")
        ran = f" [{entry['implementation']}]" if entry.get("implementation") else ""
        print(
            f"{name:12s} {entry['status']:8s} AP={ap if ap is None else round(ap, 2)}{ran} {entry['reason']}"
        )
    for name, entry in report["parity"].items():
        verdict = "pass" if entry["pass"] else "FAIL"
        gates = entry.get("gate_decisions")
        flips = f" gate flips={gates['flipped']}/{gates['decisions']} (pinned)" if gates else ""
        print(f"{name:12s} parity {verdict}: delta_AP={entry['delta_AP']}{flips}")
        print(precision_line(entry["precision"], entry["tolerance"]))


def run(args: argparse.Namespace) -> int:
    from gsmlp.args import load_model_from_args
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.distributed import process_group
    from gsmlp.runtime.ort_session import library_status, op_library
    from gsmlp.validation.report_files import write_report_set
    from gsmlp.validation.session import build_report
    from gsmlp.validation.tolerances import load_tolerances

    names = parse_backends(args.backends)
    _check_args(args)
    tolerances = load_tolerances(args.tolerances) if args.tolerances else None
    if "onnxruntime" in names and args.ort_op == "auto" and op_library() is None:
        print(library_status())
    with process_group() as group:
        with group.together("loading the model and data"):
            loaded = load_model_from_args(args)
            dataset = resolve_dataset(args.data, args.images)
        report = _build(build_report, loaded, dataset, names, tolerances, args, group)
        with group.together("writing the report"):
            if report is not None:
                write_report_set(report, args.report)
        passed = group.broadcast(report["pass"] if report is not None else None)
    if report is None:  # another rank than 0: rank 0 reports, every rank exits with the verdict
        return 0 if passed else 1
    _print_summary(report)
    print(f"report: {args.report}")
    if not report["pass"]:
        from gsmlp.validation.summary import failures

        print(f"error: validation failed ({args.report}): {'; '.join(failures(report))}", file=sys.stderr)
        return 1
    return 0


def _build(build_report, loaded, dataset, names, tolerances, args: argparse.Namespace, group) -> dict | None:
    return build_report(
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
        reference_images=args.fp64_images,
        group=group,
    )
