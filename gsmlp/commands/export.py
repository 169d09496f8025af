"""`gsmlp export`: a detector -> one ONNX file with a GatedSparseMLP node per gated FFN."""

from __future__ import annotations

import argparse

from gsmlp.args import (
    BATCH,
    BLOCK_SIZE,
    MAX_IMAGE_SIDE,
    Range,
    add_force_argument,
    add_model_argument,
    check_ranges,
    load_model_from_args,
    model_input,
)
from gsmlp.op_identity import ONNX_OPSET
from gsmlp.paths import OutputPlan

HELP = "export a (gated) detector to ONNX with GatedSparseMLP and MultiScaleDeformableAttention nodes"
DESCRIPTION = f"""\
Write the detector as ONNX (opset {ONNX_OPSET}). Each FFN in gated mode becomes ONE node `GatedSparseMLP`
of domain `gsmlp` (inputs x, W1, B1, W2, B2, GateDown, GateUp, GateBias; attributes block_size, threshold,
plugin_version, plugin_namespace), and the file carries an ONNX local function of the same name whose body
computes the op with standard ONNX ops: ONNX Runtime runs the file as is, and TensorRT 10.15+ binds the
gsmlp plugin where it is loaded. SIBS-pruned neurons are removed from the weights (an exact change).
FFNs without a gate (dense or SIBS-only) export as plain MatMul/Add/Relu.

Deformable DETR: each multi-scale deformable attention (encoder and decoder) becomes ONE node
`MultiScaleDeformableAttention` of domain `gsmlp` (inputs value, spatial_shapes and level_start_index as
int32, sampling_locations, attention_weights; attributes plugin_version, plugin_namespace) with its own
local function, the levelwise GridSample form in standard ops: any ONNX runtime runs it, and the gsmlp op
library or TensorRT plugin computes the node on its kernel where loaded. The node does not depend on
gating: --dense files have it too. --sampling inline writes the GridSample form itself, with no node (the
files of earlier gsmlp versions). The file's metadata records which: gsmlp.sampling = op | inline (none for
DETR). The op contract is docs/op_spec.md; what was measured is docs/EXPORT.md.

Inputs: pixel_values [B,3,H,W] float32 and pixel_mask [B,H,W] int64 (1 = real pixel), so batches of
different image sizes stay correct. Outputs: logits and pred_boxes, float32 (also with --dtype fp16).

examples:
  gsmlp export --model runs/detr-small-mgs --out runs/gated.onnx
  gsmlp export --model detr-small --dense --out runs/dense.onnx --dynamic
  gsmlp export --model runs/deformable-mgs --out runs/gated-fp16.onnx --dtype fp16 --height 800 --width 1088
  gsmlp export --model deformable-detr-small --dense --sampling inline --out runs/dense-gridsample.onnx
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, torch_sampling=False)  # the trace swaps the sampling for its own stand-in
    group = parser.add_argument_group("export")
    group.add_argument(
        "--out", required=True, metavar="FILE.onnx", help="the ONNX file to write (atomically)"
    )
    group.add_argument(
        "--dense", action="store_true", help="export every FFN as the plain dense FFN (the baseline engine)"
    )
    group.add_argument(
        "--dtype",
        choices=("fp32", "fp16"),
        default="fp32",
        help="fp16: a strongly typed fp16 graph for TensorRT 11 (LayerNorm and Softmax stay fp32; "
        "inputs and outputs stay float32) (default: fp32)",
    )
    group.add_argument(
        "--dynamic",
        action="store_true",
        help="batch, height and width dynamic (DETR only: Deformable DETR bakes its feature-map "
        "shapes into the graph, so it is exported per size)",
    )
    group.add_argument(
        "--height", type=int, default=800, metavar="H", help="traced image height (default: 800)"
    )
    group.add_argument(
        "--width", type=int, default=800, metavar="W", help="traced image width (default: 800)"
    )
    group.add_argument("--batch", type=int, default=1, metavar="N", help="traced batch size (default: 1)")
    group.add_argument(
        "--sampling",
        choices=("op", "inline"),
        default="op",
        help="Deformable DETR's multi-scale sampling: op writes one gsmlp MultiScaleDeformableAttention "
        "node per deformable attention, with a GridSample function body any runtime can run; inline writes "
        "the GridSample form with no node (default: op; DETR has no deformable attention)",
    )
    add_force_argument(group)


def _check_args(args: argparse.Namespace) -> None:
    from gsmlp.exporter.export import EXPORT_OUTPUT

    side = Range(1, MAX_IMAGE_SIDE)
    check_ranges(args, {"height": side, "width": side, "batch": BATCH, "block_size": BLOCK_SIZE})
    plan = OutputPlan(force=args.force)
    plan.file(args.out, "--out", EXPORT_OUTPUT)
    plan.check({"--model": model_input(args.model)})


def run(args: argparse.Namespace) -> int:
    from gsmlp.exporter.export import ExportOptions, export_onnx

    _check_args(args)
    loaded = load_model_from_args(args)
    options = ExportOptions(
        dense=args.dense,
        dtype=args.dtype,
        dynamic=args.dynamic,
        height=args.height,
        width=args.width,
        batch=args.batch,
        preprocess=loaded.preprocess,
        sampling=args.sampling,
    )
    print(f"exporting {loaded.source} ({loaded.family}) to {args.out} ...", flush=True)
    summary = export_onnx(loaded.model, args.out, options)
    sampling = {"op": f"{summary.sampling_nodes} MultiScaleDeformableAttention nodes, ",
                "inline": "deformable sampling inline (GridSample), "}.get(summary.sampling, "")  # fmt: skip
    print(
        f"wrote {summary.path}: {summary.gated_nodes} GatedSparseMLP nodes, {summary.plain_ffns} plain FFNs, "
        f"{sampling}{summary.dtype}, "
        f"{'dynamic' if summary.dynamic else f'{args.batch}x3x{args.height}x{args.width}'}"
    )
    return 0
