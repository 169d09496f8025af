"""Where a Deformable DETR computes its multi-scale sampling: the gsmlp torch op, or transformers' module.

transformers' pure-PyTorch `MultiScaleDeformableAttention` (the only path that runs on a CPU) draws every
level's samples with `grid_sample`, which re-derives each sample's four corners and weights for every
channel, then stacks and weights them in separate passes. The torch op
`gsmlp::multi_scale_deformable_attention` (gsmlp.kernels, the contract in docs/op_spec.md) computes the same
sum on the CPU kernel, each sample's corners once for all channels. It is not bit-exact: the summation order
differs (the parity bound is in docs/EXPORT.md and tests/test_sampling.py).

The model owns this routing, as it owns the GatedSparseMLP one (gsmlp.model.kernel_hook): the kernel
library knows tensors only. Each transformers attention block (`DeformableDetrMultiscaleDeformableAttention`)
keeps its sampling core in its `attn` attribute; `use_sampling(model, "op")` puts `OpSampling` there and
`use_sampling(model, "transformers")` puts transformers' module back. No parameter moves, so state dicts,
checkpoints and the exporter (which swaps `attn` for its own stand-in while tracing) are unaffected.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn
from transformers.models.deformable_detr.modeling_deformable_detr import (
    DeformableDetrMultiscaleDeformableAttention,
    MultiScaleDeformableAttention,
)

from gsmlp.errors import NotBuiltError
from gsmlp.model.sampling_choice import DEFAULT_SAMPLING, SAMPLING_CHOICES

OP_SAMPLING = "gsmlp torch op"
TRANSFORMERS_SAMPLING = "transformers"
SUPPORTED_DTYPES = (torch.float32, torch.float16)
_warned = False


def sampling_owners(model: nn.Module) -> list[DeformableDetrMultiscaleDeformableAttention]:
    """Every attention block whose `attn` is a sampling core, encoder and decoder, in model order."""
    return [m for m in model.modules() if isinstance(m, DeformableDetrMultiscaleDeformableAttention)]


def _torch_op() -> tuple[Callable | None, str]:
    """gsmlp.kernels' multi_scale_deformable_attention, or None and why it cannot run here."""
    from gsmlp import kernels

    op = getattr(kernels, "multi_scale_deformable_attention", None)
    if op is None:
        return None, "this gsmlp build has no gsmlp.kernels.multi_scale_deformable_attention torch op"
    if not kernels.available():
        return None, f"gsmlp kernels not built: {kernels.why_not_loaded()}"
    try:  # a library built before the op existed loads, but lacks its entry point
        op(*_probe_inputs())
    except NotBuiltError as exc:
        return None, str(exc)
    return op, ""


def _probe_inputs() -> tuple[torch.Tensor, ...]:
    """One query of one head sampling a 1x1 level: the smallest call that reaches the kernel."""
    return (
        torch.ones(1, 1, 1, 1),
        torch.ones(1, 2, dtype=torch.int64),
        torch.zeros(1, dtype=torch.int64),
        torch.full((1, 1, 1, 1, 1, 2), 0.5),
        torch.ones(1, 1, 1, 1, 1),
    )


class OpSampling(nn.Module):
    """transformers' MultiScaleDeformableAttention, computed by the gsmlp torch op where it can run.

    Where it cannot (gradients needed: the op has no backward; a dtype or device the kernels lack; tracing,
    where the exporter's stand-in belongs), the call goes to transformers' module, so results never depend
    on whether the op ran beyond the stated parity bound.
    """

    def __init__(self, op: Callable, original: MultiScaleDeformableAttention) -> None:
        super().__init__()
        self.op = op
        # A plain attribute, not a submodule: the module tree holds one sampling core per attention block.
        self.__dict__["transformers_module"] = original

    def __deepcopy__(self, memo: dict) -> OpSampling:
        # The torch op is a process-wide registration (torch.ops cannot be copied): the copy shares it, and
        # gets its own copy of transformers' module, as a copied model would (the fp64 reference does this).
        copied = OpSampling(self.op, copy.deepcopy(self.transformers_module, memo))
        copied.train(self.training)
        memo[id(self)] = copied
        return copied

    def _op_can_run(self, value: torch.Tensor, *floats: torch.Tensor) -> bool:
        tensors = (value, *floats)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        same_dtype = value.dtype in SUPPORTED_DTYPES and all(t.dtype == value.dtype for t in floats)
        device_ok = value.device.type == "cpu" or (value.device.type == "cuda" and _cuda_built())
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        return same_dtype and device_ok and not needs_grad and not tracing

    def forward(
        self,
        value: torch.Tensor,
        value_spatial_shapes: torch.Tensor,
        value_spatial_shapes_list: list[tuple[int, int]],
        level_start_index: torch.Tensor,
        sampling_locations: torch.Tensor,
        attention_weights: torch.Tensor,
        im2col_step: int,
    ) -> torch.Tensor:
        if self._op_can_run(value, sampling_locations, attention_weights):
            return self.op(
                value, value_spatial_shapes, level_start_index, sampling_locations, attention_weights
            )
        return self.transformers_module(
            value,
            value_spatial_shapes,
            value_spatial_shapes_list,
            level_start_index,
            sampling_locations,
            attention_weights,
            im2col_step,
        )


def _cuda_built() -> bool:
    from gsmlp import kernels

    return kernels.cuda_built()


def _transformers_module(core: nn.Module) -> nn.Module:
    return core.transformers_module if isinstance(core, OpSampling) else core


def _warn_once(reason: str) -> None:
    global _warned
    if not _warned:
        warnings.warn(
            f"{reason}: Deformable DETR samples with transformers' module", RuntimeWarning, stacklevel=3
        )
        _warned = True


def use_sampling(model: nn.Module, choice: str = DEFAULT_SAMPLING) -> str:
    """Route every deformable attention of `model` (in place) and say what now samples: OP_SAMPLING,
    TRANSFORMERS_SAMPLING, or "" for a model without deformable attention (DETR).

    choice "op" raises NotBuiltError naming what is missing where the op cannot run here; "auto" then warns
    once and keeps transformers' module; "transformers" restores transformers' module.
    """
    if choice not in SAMPLING_CHOICES:
        raise ValueError(f"sampling {choice!r}: choose one of {', '.join(SAMPLING_CHOICES)}")
    owners = sampling_owners(model)
    if not owners:
        return ""
    op, missing = (None, "") if choice == "transformers" else _torch_op()
    if op is None:
        if choice == "op":
            raise NotBuiltError(f"--torch-sampling op: {missing}")
        if choice == "auto":
            _warn_once(missing)
        for owner in owners:
            owner.attn = _transformers_module(owner.attn)
        return TRANSFORMERS_SAMPLING
    for owner in owners:
        owner.attn = OpSampling(op, _transformers_module(owner.attn))
    return OP_SAMPLING


def sampling_in_use(model: nn.Module) -> str:
    """OP_SAMPLING, TRANSFORMERS_SAMPLING, or "" for a model without deformable attention."""
    owners = sampling_owners(model)
    if not owners:
        return ""
    return OP_SAMPLING if all(isinstance(o.attn, OpSampling) for o in owners) else TRANSFORMERS_SAMPLING


@contextlib.contextmanager
def transformers_sampling(model: nn.Module) -> Iterator[None]:
    """Unmodified transformers sampling inside the block, whatever the model used before; restored after."""
    owners = sampling_owners(model)
    before = [owner.attn for owner in owners]
    try:
        for owner in owners:
            owner.attn = _transformers_module(owner.attn)
        yield
    finally:
        for owner, core in zip(owners, before, strict=True):
            owner.attn = core
