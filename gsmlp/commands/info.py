"""`gsmlp info`: what a --model is: family, source, each FFN's gating settings, size, preprocessing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gsmlp.args import BLOCK_SIZE, add_model_argument, check_ranges, load_model_from_args
from gsmlp.runtime.ort_session import library_status
from gsmlp.text_table import align

if TYPE_CHECKING:
    from gsmlp.model.loaders import LoadedDetector

HELP = "describe a detector: family, FFN layers and their gating, parameters, preprocessing"
DESCRIPTION = """\
Load a detector the way every other command does and describe it: model family, where it came from,
one row per FFN (d_model, hidden width, width before pruning, gate block size, gate rank, threshold,
mode), the parameter count, the preprocessing settings and, for Deformable DETR, what computes its
multi-scale sampling in PyTorch (--torch-sampling: the gsmlp torch op or transformers). Nothing is
written. The last line says whether the gsmlp ONNX Runtime op library is built (it runs gated ONNX files
sparsely), and how to build it if not.

Example:
  gsmlp info --model runs/detr-small-mgs
"""

COLUMNS = ("layer", "d_model", "hidden", "dense_hidden", "block_size", "gate_rank", "threshold", "mode")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)


def layer_rows(detector: LoadedDetector) -> list[tuple[str, ...]]:
    from gsmlp.model.wrap import gated_layers  # needs torch; see gsmlp.args

    rows = []
    for name, layer in gated_layers(detector.model):
        rank = str(layer.gate.rank) if layer.gate is not None else "-"
        threshold = f"{float(layer.threshold):g}" if layer.gate is not None else "-"
        values = (name, layer.d_model, layer.hidden, layer.dense_hidden, layer.block_size, rank, threshold)
        rows.append(tuple(str(v) for v in values) + (layer.mode,))
    return rows


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines, _ = align([header, *rows])
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from gsmlp.model.sampling import sampling_in_use  # needs torch; see gsmlp.args

    check_ranges(args, {"block_size": BLOCK_SIZE})
    detector = load_model_from_args(args)
    parameters = sum(p.numel() for p in detector.model.parameters())
    pre = detector.preprocess
    print(f"family:        {detector.family}")
    print(f"source:        {detector.source}")
    print(f"gated:         {'yes' if detector.gated else 'no'}")
    print(f"parameters:    {parameters:,}")
    sampling = sampling_in_use(detector.model)
    if sampling:
        print(f"sampling:      {sampling} (Deformable DETR's multi-scale sampling in PyTorch)")
    print(
        f"preprocessing: shortest edge {pre.shortest_edge}, longest edge {pre.longest_edge}, "
        f"pad to a multiple of {pre.pad_multiple}, mean {list(pre.image_mean)}, std {list(pre.image_std)}"
    )
    print()
    print(format_table(COLUMNS, layer_rows(detector)))
    print()
    print(library_status())
    return 0
