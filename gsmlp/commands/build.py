"""`gsmlp build`: a TensorRT engine from a gsmlp ONNX file, with the GatedSparseMLP plugin."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsmlp.args import POSITIVE, add_force_argument, check_ranges
from gsmlp.errors import GsmlpError
from gsmlp.io import OutputKind
from gsmlp.paths import OutputPlan, companion_output, require_file, require_library

# The timing cache is read first and written back: whatever file is there is an earlier cache by design.
TIMING_CACHE = OutputKind("a TensorRT timing cache", lambda _: True)

HELP = "build a TensorRT engine with the GatedSparseMLP plugin"

DESCRIPTION = """\
Build a TensorRT engine from an ONNX file written by `gsmlp export`. Every GatedSparseMLP node becomes the
plugin of libgsmlp_trt_plugin.so; the network is strongly typed, so an fp16 engine comes from an fp16 ONNX
(TensorRT 11 has no FP16 builder flag). Beside the engine goes ENGINE.json: TensorRT version, plugin version,
GPU name and compute capability, input shapes. `gsmlp validate` and the Python runner check it before loading.

Needs a CUDA GPU, TensorRT and pycuda: pip install 'gsmlp[trt]' on such a machine.

Examples:
  gsmlp build --onnx runs/gated.onnx --out runs/gated.engine \\
              --plugin-lib build/cmake/plugins/tensorrt/libgsmlp_trt_plugin.so \\
              --shapes 1x512x512,1x800x800,1x1333x1333 --timing-cache runs/timing.cache
  gsmlp build --onnx runs/gated.onnx --out runs/body.engine --no-plugin --shapes 1x800x800
              (the same ONNX with the function body inlined: the A/B check of the plugin)

The plugin library is --plugin-lib, else $GSMLP_TRT_PLUGIN, else the one installed with gsmlp.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--onnx", required=True, type=Path, metavar="FILE", help="the ONNX model (gsmlp export)"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="ENGINE", help="the engine file to write")
    parser.add_argument(
        "--plugin-lib", type=Path, metavar="PATH", help="libgsmlp_trt_plugin.so (default: see below)"
    )
    parser.add_argument(
        "--no-plugin",
        action="store_true",
        help="do not load the plugin: TensorRT inlines each node's ONNX function body instead",
    )
    parser.add_argument(
        "--shapes",
        metavar="MIN,OPT,MAX",
        help="batch x height x width of the optimization profile for dynamic inputs, e.g. "
        "1x512x512,1x800x800,1x1333x1333; one BxHxW fixes the size. Required when the ONNX is dynamic",
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        metavar="FILE",
        help="read layer timings from FILE if it exists and write them back: later builds are faster",
    )
    parser.add_argument(
        "--workspace",
        type=int,
        metavar="MB",
        help="limit TensorRT's workspace memory pool to MB mebibytes (default: TensorRT's, the GPU memory)",
    )
    parser.add_argument(
        "--block-masks",
        action="store_true",
        help="also output every GatedSparseMLP layer's own gate decisions (BlockMask, bool) as engine "
        "outputs named gsmlp.block_mask:<node>: `gsmlp validate` then pins PyTorch to them "
        "(docs/VALIDATION.md). The ONNX file is not changed; the engine gains a small output per gated layer",
    )
    parser.add_argument("--verbose", action="store_true", help="print TensorRT's verbose log")
    add_force_argument(parser)


def _check_args(args: argparse.Namespace) -> None:
    """Numbers, input files and output paths, before TensorRT is even imported."""
    from gsmlp.runtime.engine_metadata import is_gsmlp_engine, metadata_path

    check_ranges(args, {"workspace": POSITIVE})
    if args.no_plugin and args.plugin_lib is not None:
        raise GsmlpError("--no-plugin and --plugin-lib contradict each other: give one")
    require_file(args.onnx, "--onnx")
    if args.plugin_lib is not None:
        require_library(args.plugin_lib, "--plugin-lib")
    engine = OutputKind("an engine written by gsmlp build (ENGINE.json beside it)", is_gsmlp_engine)
    plan = OutputPlan(force=args.force)
    plan.file(args.out, "--out", engine)
    plan.file(metadata_path(args.out), "--out's metadata", companion_output(args.out, engine))
    if args.timing_cache is not None:
        plan.file(args.timing_cache, "--timing-cache", TIMING_CACHE)
    plan.check({"--onnx": args.onnx, "--plugin-lib": args.plugin_lib})


def run(args: argparse.Namespace) -> int:
    # Imported here: the builder pulls in onnx, and tensorrt lazily, only when a build is asked for.
    from gsmlp.runtime.trt_build import BuildOptions, build_engine, parse_shapes

    _check_args(args)
    options = BuildOptions(
        onnx=args.onnx,
        out=args.out,
        plugin_lib=args.plugin_lib,
        use_plugin=not args.no_plugin,
        shapes=parse_shapes(args.shapes) if args.shapes else None,
        timing_cache=args.timing_cache,
        workspace_mb=args.workspace,
        verbose=args.verbose,
        block_masks=args.block_masks,
    )
    meta = build_engine(options)
    gpu = meta["gpu"]
    print(
        f"wrote {args.out} and {args.out.name}.json: TensorRT {meta['tensorrt_version']}, "
        f"{gpu['name']} (compute capability {gpu['compute_capability']}), "
        f"{meta['gated_nodes']} GatedSparseMLP nodes as {meta['gated_nodes_as']}, "
        f"built in {meta['build_seconds']:.1f} s"
    )
    return 0
