"""`gsmlp bench msda`: the MultiScaleDeformableAttention op alone, timed against what runs without it.

- onnxruntime: one node of the op through the gsmlp op library against the same node through its ONNX local
  function (the levelwise GridSample body of exporter/sampling_function.py), in two sessions with the same
  intra-op threads and dtype (CPU provider);
- pytorch: the torch op gsmlp::multi_scale_deformable_attention against transformers' pure-PyTorch
  MultiScaleDeformableAttention (the grid_sample path, the only one on a CPU), same torch threads and dtype.
Each pair is timed interleaved in one run (validation.ffn_bench.time_pair), so load changes hit both alike.

The shapes are Deformable-DETR-R50's at 800 x 800 (levels 100x100, 50x50, 25x25, 13x13; M 8, D 32, L 4,
P 4): the encoder (every pixel a query, Lq = S = 13,294) and the decoder (Lq 300). Sampling locations are
placed as the model places them: each query's reference point (the encoder: its own pixel centre in every
level; the decoder: a random point) plus offsets of a few pixels, and the attention weights are a softmax
over the L * P samples. Uniformly random locations would make every corner a cache miss, which the model's
locality never does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from gsmlp import kernels
from gsmlp.errors import GsmlpError, NotBuiltError
from gsmlp.exporter.sampling_function import multi_scale_deformable_attention_function
from gsmlp.op_identity import (
    DOMAIN,
    DOMAIN_VERSION,
    MSDA_INPUTS,
    MSDA_OP_TYPE,
    MSDA_OUTPUTS,
    ONNX_OPSET,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
)
from gsmlp.runtime.ort_session import op_library, why_no_library
from gsmlp.validation.ffn_bench import time_pair
from gsmlp.validation.ffn_bench_onnxruntime import ONNX_TYPES, bench_session

R50_LEVELS = ((100, 100), (50, 50), (25, 25), (13, 13))
HEADS, HEAD_DIM, POINTS = 8, 32, 4
# name -> queries (None: every pixel of every level, the encoder)
SHAPES = {"encoder": None, "decoder": 300}
BACKENDS = ("onnxruntime", "pytorch")
OFFSET_PIXELS = 2.0  # spread of the sampling offsets around the reference point, in pixels of each level
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class Inputs:
    """One problem in transformers' layout (int64 level tables, as the model keeps them)."""

    value: torch.Tensor
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    sampling_locations: torch.Tensor
    attention_weights: torch.Tensor

    @property
    def levels(self) -> list[tuple[int, int]]:
        return [(int(h), int(w)) for h, w in self.spatial_shapes]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.value, self.spatial_shapes, self.level_start_index, self.sampling_locations,
                self.attention_weights)  # fmt: skip

    def feeds(self, dtype: str) -> dict[str, np.ndarray]:
        """The ONNX node's inputs: the float ones in `dtype`, the level tables int32."""
        np_type = ONNX_TYPES[dtype][0]
        arrays = [t.numpy() for t in self.tensors()]
        return {
            name: a.astype(np.int32 if name in MSDA_INPUTS[1:3] else np_type)
            for name, a in zip(MSDA_INPUTS, arrays, strict=True)
        }


def model_like_inputs(levels, queries: int | None, batch: int = 1, seed: int = 0) -> Inputs:
    """Inputs placed as Deformable DETR places them (module docstring); queries None: the encoder."""
    generator = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.long)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    if queries is None:  # every pixel centre of every level, in (x, y), as the encoder's reference points
        centres = [
            torch.stack(
                torch.meshgrid((torch.arange(w) + 0.5) / w, (torch.arange(h) + 0.5) / h, indexing="xy"), -1
            )
            for h, w in levels
        ]
        reference = torch.cat([c.reshape(-1, 2) for c in centres])
    else:
        reference = torch.rand(queries, 2, generator=generator)
    count, level_count = reference.shape[0], len(levels)
    pixels = shapes.flip(-1).float()  # (W, H) of each level
    offsets = torch.randn(batch, count, HEADS, level_count, POINTS, 2, generator=generator) * OFFSET_PIXELS
    locations = reference[None, :, None, None, None, :] + offsets / pixels[None, None, None, :, None, :]
    logits = torch.randn(batch, count, HEADS, level_count * POINTS, generator=generator)
    weights = logits.softmax(-1).view(batch, count, HEADS, level_count, POINTS)
    value = torch.randn(batch, int(sizes.sum()), HEADS, HEAD_DIM, generator=generator)
    return Inputs(value, shapes, starts, locations.contiguous(), weights)


def op_model(levels: int, dtype: str = "fp32", function: bool = True) -> onnx.ModelProto:
    """One MultiScaleDeformableAttention node as the exporter writes it (plugin attributes, the local function
    for `levels` levels unless function=False), all five inputs graph inputs of dynamic sizes."""
    float_type = ONNX_TYPES[dtype][1]
    types = (float_type, TensorProto.INT32, TensorProto.INT32, float_type, float_type)
    ranks = (4, 2, 1, 6, 5)
    inputs = [
        helper.make_tensor_value_info(name, elem, [f"{name}_{i}" for i in range(rank)])
        for name, elem, rank in zip(MSDA_INPUTS, types, ranks, strict=True)
    ]
    output = helper.make_tensor_value_info(MSDA_OUTPUTS[0], float_type, ["batch", "queries", "channels"])
    node = helper.make_node(
        MSDA_OP_TYPE, list(MSDA_INPUTS), list(MSDA_OUTPUTS), domain=DOMAIN, name="msda",
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE,
    )  # fmt: skip
    functions = [multi_scale_deformable_attention_function(levels)] if function else []
    return helper.make_model(
        helper.make_graph([node], "msda", inputs, [output]),
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        functions=functions,
        ir_version=9,
    )


def with_level_tables_as_initializers(model: onnx.ModelProto, inputs: Inputs) -> onnx.ModelProto:
    """The same model with spatial_shapes and level_start_index constant, as a static-size export has them."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    tables = {MSDA_INPUTS[1]: inputs.spatial_shapes, MSDA_INPUTS[2]: inputs.level_start_index}
    kept = [i for i in copy.graph.input if i.name not in tables]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    copy.graph.initializer.extend(
        numpy_helper.from_array(t.numpy().astype(np.int32), name) for name, t in tables.items()
    )
    return copy


@dataclass
class Case:
    shape: str  # encoder, decoder
    backend: str  # onnxruntime: library vs function body; pytorch: torch op vs transformers' module
    queries: int
    value_len: int
    dtype: str
    threads: int
    reference: str  # what the op is timed against
    reference_ms: float
    op_ms: float
    speedup: float  # reference_ms / op_ms
    max_abs_diff: float  # op against the reference (the function body, transformers' module), same inputs

    def as_dict(self) -> dict:
        return asdict(self)


def check_runnable(backends: list[str], dtype: str = "fp32") -> None:
    if "pytorch" in backends and dtype == "fp16":
        # Measured (torch 2.13 CPU): grid_sample in half precision segfaults or returns NaN at these shapes.
        raise GsmlpError(
            "--dtype fp16 --backends pytorch: transformers' MultiScaleDeformableAttention cannot run in fp16 "
            "on the CPU (torch's half-precision grid_sample crashes or returns NaN there); time fp16 with "
            "--backends onnxruntime, or pytorch in fp32"
        )
    if not kernels.available():
        raise NotBuiltError(f"gsmlp bench msda: {kernels.why_not_loaded()}")
    if "onnxruntime" in backends and op_library() is None:
        raise NotBuiltError(f"gsmlp bench msda --backends onnxruntime: {why_no_library()}")


def _transformers_module():
    from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

    return MultiScaleDeformableAttention()


def measure_onnxruntime(
    shape: str, inputs: Inputs, *, dtype: str, threads: int, repeat: int, warmup: int
) -> Case:
    """The op library against the local-function body: one node, same inputs, threads and dtype."""
    model = op_model(len(inputs.levels), dtype)
    library = bench_session(model, "library", threads)
    body = bench_session(model, "function", threads)
    feeds = inputs.feeds(dtype)
    (out_library,), (out_body,) = library.run(None, feeds), body.run(None, feeds)
    body_ms, library_ms = time_pair(
        lambda: body.run(None, feeds), lambda: library.run(None, feeds), torch.device("cpu"), repeat, warmup
    )
    diff = float(np.abs(out_library.astype(np.float64) - out_body.astype(np.float64)).max())
    reference = "function body (GridSample per level)"
    return _case(shape, "onnxruntime", inputs, dtype, threads, reference, body_ms, library_ms, diff)


def measure_pytorch(
    shape: str, inputs: Inputs, *, dtype: str, threads: int, repeat: int, warmup: int
) -> Case:
    """The torch op against transformers' MultiScaleDeformableAttention, same torch threads and dtype."""
    module = _transformers_module()
    torch_dtype = TORCH_DTYPES[dtype]
    value, shapes, starts, locations, weights = inputs.tensors()
    value, locations, weights = (t.to(torch_dtype) for t in (value, locations, weights))
    levels = inputs.levels

    def reference():
        return module(value, shapes, levels, starts, locations, weights, 64)

    def op():
        return kernels.multi_scale_deformable_attention(value, shapes, starts, locations, weights, threads)

    with torch.no_grad():
        expected = reference()
        diff = float((op().double() - expected.double()).abs().max())
        reference_ms, op_ms = time_pair(reference, op, torch.device("cpu"), repeat, warmup)
    return _case(shape, "pytorch", inputs, dtype, threads, "transformers' MultiScaleDeformableAttention",
                 reference_ms, op_ms, diff)  # fmt: skip


def _case(shape, backend, inputs, dtype, threads, reference, reference_ms, op_ms, diff) -> Case:
    return Case(
        shape, backend, inputs.sampling_locations.shape[1], inputs.value.shape[1], dtype, threads, reference,
        round(reference_ms, 3), round(op_ms, 3), round(reference_ms / op_ms, 3), diff,
    )  # fmt: skip


def run_cases(
    *,
    shapes: list[str],
    backends: list[str],
    dtype: str,
    threads: int,
    repeat: int,
    warmup: int,
    progress=None,
) -> list[Case]:
    """Every shape x backend, each pair timed interleaved."""
    cases = []
    for shape in shapes:
        inputs = model_like_inputs(R50_LEVELS, SHAPES[shape])
        for backend in backends:
            measure = measure_onnxruntime if backend == "onnxruntime" else measure_pytorch
            cases.append(measure(shape, inputs, dtype=dtype, threads=threads, repeat=repeat, warmup=warmup))
            if progress:
                progress(cases[-1])
    return cases
