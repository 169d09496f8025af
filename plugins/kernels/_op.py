"""The torch custom op `gsmlp::gated_sparse_mlp` (CPU and CUDA kernels, plus a fake for tracing)."""

from __future__ import annotations

import torch

from gsmlp.errors import NotBuiltError
from gsmlp.kernels import _calls
from gsmlp.kernels import _library as L

OP_NAME = "gsmlp::gated_sparse_mlp"


@torch.library.custom_op(OP_NAME, mutates_args=())
def gated_sparse_mlp(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    gate_down: torch.Tensor | None,
    gate_up: torch.Tensor | None,
    gate_bias: torch.Tensor | None,
    block_size: int,
    threshold: float,
    threads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Y (shape of x) and the active blocks per token (int32, x's leading shape). See docs/op_spec.md.

    `threads` <= 0 uses torch.get_num_threads() (CPU only).
    """
    raise NotImplementedError(f"{OP_NAME} has no kernel for device {x.device.type}")


def _library():
    lib = L.load()
    if lib is None:
        raise NotBuiltError(f"gsmlp kernels not built: {L.why_not_loaded()}")
    return lib


def _prepare(x, w1, b1, w2, b2, gate_down, gate_up, gate_bias):
    # The kernel reads rows with any stride but needs unit stride inside a row; weights contiguous.
    d_model = x.shape[-1]
    x2d = x.reshape(-1, d_model)
    rows_overlap = x2d.shape[0] > 1 and x2d.stride(0) < d_model  # e.g. broadcast rows
    if x2d.shape[0] > 0 and (x2d.stride(1) != 1 or rows_overlap):
        x2d = x2d.contiguous()
    weights = [t if t is None else t.contiguous() for t in (w1, b1, w2, b2, gate_down, gate_up, gate_bias)]
    return x2d, weights


def _run(x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold, call):
    x2d, (w1, b1, w2, b2, gate_down, gate_up, gate_bias) = _prepare(
        x, w1, b1, w2, b2, gate_down, gate_up, gate_bias
    )
    y = torch.empty(x2d.shape, dtype=x.dtype, device=x.device)
    active = torch.empty(x2d.shape[0], dtype=torch.int32, device=x.device)
    rank = 0 if gate_down is None else gate_down.shape[0]
    problem = _calls.make_problem(x2d, w1, block_size, rank, threshold)
    tensors = _calls.make_tensors(x2d, w1, b1, w2, b2, gate_down, gate_up, gate_bias, y, active)
    # The library validates arguments even for 0 tokens, then does no work.
    call(problem, tensors, [w1, b1, w2, b2, gate_down, gate_up, gate_bias])
    return y.reshape(x.shape), active.reshape(x.shape[:-1])


@gated_sparse_mlp.register_kernel("cpu")
def _cpu(x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold, threads):
    lib = _library()
    threads = threads if threads > 0 else torch.get_num_threads()
    return _run(
        x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold,
        lambda p, t, w: _calls.cpu_forward_prepacked(lib, p, t, w, threads),
    )  # fmt: skip


@gated_sparse_mlp.register_kernel("cuda")
def _cuda(x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold, threads):
    lib = _library()
    return _run(
        x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold,
        lambda p, t, w: _calls.cuda_forward(lib, p, t, x.device),
    )  # fmt: skip


@gated_sparse_mlp.register_fake
def _fake(x, w1, b1, w2, b2, gate_down, gate_up, gate_bias, block_size, threshold, threads):
    return torch.empty_like(x), x.new_empty(x.shape[:-1], dtype=torch.int32)
