"""Export a wrapped DETR / Deformable DETR to ONNX: one gsmlp::GatedSparseMLP node per gated FFN."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import onnx
import torch
from torch import nn

from gsmlp.deploy_metadata import FAMILY_KEY
from gsmlp.errors import GsmlpError
from gsmlp.exporter.deformable_attention import SAMPLING_CHOICES, Sampling, sampling_for_export
from gsmlp.exporter.deploy_metadata import runtime_metadata
from gsmlp.exporter.export_modules import GatedMLPForExport, PlainMLPForExport
from gsmlp.exporter.fold import fold_gated, fold_plain
from gsmlp.exporter.fp16 import convert_to_fp16
from gsmlp.exporter.graph import attach_functions, finish_model
from gsmlp.exporter.node_groups import is_coordinate_node
from gsmlp.exporter.node_names import TRACE_ROOT
from gsmlp.exporter.retype import demote_float64
from gsmlp.io import OutputKind, write_bytes_atomic
from gsmlp.model.detector import family_of
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.wrap import gated_layers, gated_slots
from gsmlp.op_identity import DOMAIN, DOMAIN_VERSION, ONNX_OPSET

INPUT_NAMES = ["pixel_values", "pixel_mask"]
OUTPUT_NAMES = ["logits", "pred_boxes"]
Dtype = Literal["fp32", "fp16"]
# What computes Deformable DETR's sampling in the file: "op" (MultiScaleDeformableAttention nodes), "inline"
# (the levelwise GridSample form), "none" (DETR). Files written before the op existed lack it: "inline".
SAMPLING_KEY = "gsmlp.sampling"


def is_gsmlp_onnx(path: str | os.PathLike[str]) -> bool:
    """An ONNX file that `gsmlp export` wrote: it parses, and carries gsmlp's metadata."""
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception:  # onnx raises DecodeError and others: any of them means "not one of ours"
        return False
    return any(prop.key == FAMILY_KEY for prop in model.metadata_props)


EXPORT_OUTPUT = OutputKind("an ONNX file written by gsmlp export", is_gsmlp_onnx)


@dataclass
class ExportOptions:
    dense: bool = False
    dtype: Dtype = "fp32"
    dynamic: bool = False
    height: int = 800
    width: int = 800
    batch: int = 1
    preprocess: PreprocessConfig | None = None  # recorded for the runtimes (None: DETR's defaults)
    sampling: Sampling = "op"  # Deformable DETR: one node per deformable attention, or "inline"


@dataclass
class ExportSummary:
    path: str
    family: str
    mode: str  # "gated" or "dense": which PyTorch mode the file reproduces
    gated_nodes: int
    plain_ffns: int
    dtype: str
    dynamic: bool
    sampling_nodes: int = 0  # MultiScaleDeformableAttention nodes
    sampling: str = "none"  # the file's gsmlp.sampling


def _check_exportable(model: nn.Module, family: str, options: ExportOptions) -> None:
    layers = list(gated_layers(model))
    if not layers:
        raise GsmlpError("the model has no GatedSparseMLP layers: wrap its FFNs (gsmlp.model.wrap) first")
    if not options.dense:
        oracle = [name for name, layer in layers if layer.mode == "oracle"]
        if oracle:
            raise GsmlpError(
                f"FFN {oracle[0]} is in oracle mode, which reads the FFN's own activations to choose its "
                "blocks and has no deployable form; export in gated mode, or pass --dense"
            )
        if all(layer.mode == "dense" for _, layer in layers):
            raise GsmlpError(
                "the model has no gated or SIBS-pruned FFN (every FFN is dense): calibrate it first "
                "(gsmlp calibrate), or pass --dense to export the plain FFNs"
            )
    if options.dynamic and family == "deformable-detr":
        raise GsmlpError(
            "--dynamic is not supported for Deformable DETR: its spatial shapes and level offsets are traced "
            "as constants, so another image size would silently give wrong outputs; export one file per "
            "size with --height/--width (see docs/EXPORT.md)"
        )
    if options.dtype not in ("fp32", "fp16"):
        raise GsmlpError(f"unknown --dtype {options.dtype!r}: choose fp32 or fp16")
    if options.sampling not in SAMPLING_CHOICES:
        raise GsmlpError(f"unknown --sampling {options.sampling!r}: choose {' or '.join(SAMPLING_CHOICES)}")


def _stand_in(layer: GatedSparseMLP, dense: bool) -> nn.Module:
    if not dense and layer.mode == "gated":
        return GatedMLPForExport(fold_gated(layer))
    return PlainMLPForExport(fold_plain(layer))


@contextlib.contextmanager
def _ffns_replaced(model: nn.Module, dense: bool) -> Iterator[tuple[int, int]]:
    """Swap each GatedSparseMLP for its export stand-in, in place, and put them back afterwards.

    In place rather than on a deep copy: gsmlp's padding fix shares the pixel mask between forward hooks
    and modules, and a copy would split that shared state.
    """
    swaps = [(slot.owner, layer, _stand_in(layer, dense)) for slot, layer in gated_slots(model)]
    try:
        for owner, _, stand_in in swaps:
            owner.mlp = stand_in
        gated = sum(isinstance(stand_in, GatedMLPForExport) for _, _, stand_in in swaps)
        yield gated, len(swaps) - gated
    finally:
        for owner, original, _ in swaps:
            owner.mlp = original


def _check_cpu_float32(model: nn.Module) -> None:
    odd = next((p for p in model.parameters() if p.dtype != torch.float32 or p.device.type != "cpu"), None)
    if odd is not None:
        raise GsmlpError(
            f"export traces a float32 model on the CPU, but a parameter is {odd.dtype} on {odd.device}: "
            "load the model in float32 on the CPU (use --dtype fp16 for an fp16 file)"
        )


class _DetectorOutputs(nn.Module):
    """(pixel_values, pixel_mask) -> (logits, pred_boxes): the plain signature every backend runs.

    The detector sits under the attribute TRACE_ROOT, which starts every traced node's name (node_names.py).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.add_module(TRACE_ROOT, detector)

    def forward(
        self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = getattr(self, TRACE_ROOT)(pixel_values=pixel_values, pixel_mask=pixel_mask)
        return outputs.logits, outputs.pred_boxes


def _example_inputs(options: ExportOptions) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (options.batch, 3, options.height, options.width)
    pixel_values = torch.randn(shape, generator=generator)
    pixel_mask = torch.ones((options.batch, options.height, options.width), dtype=torch.long)
    return pixel_values, pixel_mask


def _dynamic_axes(options: ExportOptions) -> dict[str, dict[int, str]] | None:
    if not options.dynamic:
        return None
    return {
        "pixel_values": {0: "batch", 2: "height", 3: "width"},
        "pixel_mask": {0: "batch", 1: "height", 2: "width"},
        "logits": {0: "batch"},
        "pred_boxes": {0: "batch"},
    }


def _trace_to_onnx(model: nn.Module, options: ExportOptions, custom_nodes: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    # transformers' shape checks emit one TracerWarning each; the parity tests, not those warnings, are
    # what tells whether the trace generalises, so they would only bury the summary line.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            _DetectorOutputs(model).eval(),
            _example_inputs(options),
            buffer,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=_dynamic_axes(options),
            opset_version=ONNX_OPSET,
            custom_opsets={DOMAIN: DOMAIN_VERSION} if custom_nodes else None,
            do_constant_folding=True,
            dynamo=False,  # the dynamo exporter fails on transformers' data-dependent isfinite check
        )
    return demote_float64(onnx.load_from_string(buffer.getvalue()))


def export_onnx(
    model: nn.Module, out: str | os.PathLike[str], options: ExportOptions | None = None
) -> ExportSummary:
    """Write `model` (wrapped by gsmlp.model.wrap, in its current modes) as ONNX at `out`, atomically."""
    options = options or ExportOptions()
    family = family_of(model)
    _check_exportable(model, family, options)
    _check_cpu_float32(model)
    with (
        _ffns_replaced(model, options.dense) as (gated, plain),
        sampling_for_export(model, options.sampling) as sampling,
    ):
        nodes = sampling.modules if options.sampling == "op" else 0
        proto = _trace_to_onnx(model, options, custom_nodes=gated + nodes > 0)
    mode = "gated" if not options.dense else "dense"
    held = options.sampling if sampling.modules else "none"
    metadata = {FAMILY_KEY: family, "gsmlp.mode": mode, "gsmlp.dtype": options.dtype, SAMPLING_KEY: held}
    proto = attach_functions(proto, sampling.levels)
    if options.dtype == "fp16":
        # Deformable DETR's sampling positions lose most in fp16 (gsmlp.exporter.node_groups).
        keep = is_coordinate_node if family == "deformable-detr" else None
        proto = convert_to_fp16(proto, keep_fp32=keep)
    metadata.update(runtime_metadata(model, family, mode, options.dtype, options.preprocess))
    proto = finish_model(proto, metadata=metadata)
    write_bytes_atomic(out, proto.SerializeToString())
    return ExportSummary(str(out), family, mode, gated, plain, options.dtype, options.dynamic, nodes, held)
