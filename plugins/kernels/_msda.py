"""The torch custom op `gsmlp::multi_scale_deformable_attention`: Deformable DETR's multi-scale sampling on
the kernel library (its CPU kernel; its CUDA kernel where built; a fake for tracing). Semantics:
docs/op_spec.md, exactly the core of transformers' `MultiScaleDeformableAttention` (grid_sample, bilinear,
zero padding, align_corners=False), with the positions, corner weights and sum in fp32 also for fp16 data.

    out = multi_scale_deformable_attention(value, spatial_shapes, level_start_index, sampling_locations,
                                           attention_weights)      # [N, Lq, M * D]
"""

from __future__ import annotations

import ctypes

import torch

from gsmlp.errors import GsmlpError, NotBuiltError
from gsmlp.kernels import _calls
from gsmlp.kernels import _library as L

MSDA_OP_NAME = "gsmlp::multi_scale_deformable_attention"
_RANKS = {"value": 4, "sampling_locations": 6, "attention_weights": 5, "spatial_shapes": 2,
          "level_start_index": 1}  # fmt: skip


def _library() -> ctypes.CDLL:
    lib = L.load()
    if lib is None:
        raise NotBuiltError(f"gsmlp kernels not built: {L.why_not_loaded()}")
    return lib


def _check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights) -> None:
    """Ranks, dtypes and the sizes the inputs share; the level tables' values are the kernel's to check."""
    tensors = {"value": value, "sampling_locations": sampling_locations,
               "attention_weights": attention_weights, "spatial_shapes": spatial_shapes,
               "level_start_index": level_start_index}  # fmt: skip
    for name, t in tensors.items():
        if t.dim() != _RANKS[name]:
            raise GsmlpError(f"{name} must have {_RANKS[name]} dimensions, got shape {list(t.shape)}")
    if value.dtype not in _calls.DTYPES:
        raise GsmlpError(f"value has dtype {value.dtype}; the kernels compute float32 or float16")
    for name in ("sampling_locations", "attention_weights"):
        if tensors[name].dtype != value.dtype:
            raise GsmlpError(f"{name} has dtype {tensors[name].dtype} but value has {value.dtype} (one type)")
    for name in ("spatial_shapes", "level_start_index"):
        if tensors[name].dtype not in (torch.int32, torch.int64):
            raise GsmlpError(f"{name} has dtype {tensors[name].dtype}; give int32 or int64")
    n, _, m, _ = value.shape
    levels, points = attention_weights.shape[3], attention_weights.shape[4]
    expected = {
        "sampling_locations": (n, attention_weights.shape[1], m, levels, points, 2),
        "attention_weights": (n, sampling_locations.shape[1], m, levels, points),
        "spatial_shapes": (levels, 2),
        "level_start_index": (levels,),
    }
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise GsmlpError(
                f"{name} has shape {list(tensors[name].shape)}, expected {list(shape)} (value "
                f"{list(value.shape)} is [N, S, M, D]; attention_weights {list(attention_weights.shape)} is "
                "[N, Lq, M, L, P])"
            )


def _problem(value: torch.Tensor, sampling_locations: torch.Tensor) -> L.MsdaProblem:
    n, s, m, d = value.shape
    _, lq, _, levels, points, _ = sampling_locations.shape
    return L.MsdaProblem(batch=n, value_len=s, heads=m, head_dim=d, levels=levels, queries=lq, points=points,
                         dtype=_calls.DTYPES[value.dtype])  # fmt: skip


def _run(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, call):
    _check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    value, sampling_locations, attention_weights = (
        t.contiguous() for t in (value, sampling_locations, attention_weights)
    )
    shapes, starts = (t.to(torch.int32).contiguous() for t in (spatial_shapes, level_start_index))
    n, _, m, d = value.shape
    output = value.new_empty((n, sampling_locations.shape[1], m * d))
    pointers = [t.data_ptr() for t in (value, shapes, starts, sampling_locations, attention_weights, output)]
    tensors = L.MsdaTensors(*pointers)
    call(_problem(value, sampling_locations), tensors, shapes.is_cuda)
    return output


@torch.library.custom_op(MSDA_OP_NAME, mutates_args=())
def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    threads: int = 0,
) -> torch.Tensor:
    """[N, Lq, M * D] from value [N, S, M, D], spatial_shapes [L, 2] (H, W), level_start_index [L],
    sampling_locations [N, Lq, M, L, P, 2] (x, y in [0, 1]) and attention_weights [N, Lq, M, L, P].

    spatial_shapes and level_start_index may be int32 or int64. `threads` <= 0 uses torch.get_num_threads()
    (CPU; the kernel runs on torch's OpenMP threads).
    """
    raise NotImplementedError(f"{MSDA_OP_NAME} has no kernel for device {value.device.type}")


@multi_scale_deformable_attention.register_kernel("cpu")
def _cpu(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, threads=0):
    lib = _library()
    threads = threads if threads > 0 else torch.get_num_threads()

    def call(problem, tensors, _levels_on_device):
        status = lib.gsmlp_msda_cpu_forward(ctypes.byref(problem), ctypes.byref(tensors), threads, None)
        _calls.check(lib, "gsmlp_msda_cpu_forward", status)

    return _run(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, call)


@multi_scale_deformable_attention.register_kernel("cuda")
def _cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, threads=0):
    lib = _library()
    stream = torch.cuda.current_stream(value.device).cuda_stream

    def call(problem, tensors, levels_on_device):
        # Level tables on the GPU (as transformers keeps them) are read by the kernel; CPU ones checked first.
        name = "gsmlp_msda_cuda_forward" if levels_on_device else "gsmlp_msda_cuda_forward_host_levels"
        status = getattr(lib, name)(ctypes.byref(problem), ctypes.byref(tensors), stream)
        _calls.check(lib, name, status)

    return _run(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, call)


@multi_scale_deformable_attention.register_fake
def _fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, threads=0):
    n, _, m, d = value.shape
    return value.new_empty((n, sampling_locations.shape[1], m * d))
