"""The sweep's cache: what a batch computes before the transformer, computed once per batch.

`calibrate --eval-data` evaluates the model at every sweep point on the same batches. The backbone and the
input projections do not depend on the sparsity target (gating acts on the transformer's FFNs only), so the
first point records their outputs per batch and every later point reuses them, running only the transformer.

What is held per batch: the projections' outputs (`d_model` channels per feature level) and the backbone's
masks. The backbone's feature maps reach only the projections, and the position embeddings, which read their
shape: a hit hands on zero-stride stand-ins of their shape, so they cost no memory. A batch is a hit only
where its whole record is held; the cache is bounded in bytes, and batches beyond the bound are computed as
without it. Keys are the batch's pixels and mask (a BLAKE2 digest), so a different batch can never hit.

Memory per image (float32): DETR `d_model * H/32 * W/32 * 4` bytes (DETR-R50 at 800 x 800: 0.64 MB);
Deformable DETR the same over its levels (H/8 ... H/64: Deformable-DETR-R50 at 800 x 800: 13.6 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from gsmlp.calibration.options import DEFAULT_SWEEP_CACHE_MB

MB = 1 << 20


class FeatureCache:
    """Per-batch outputs of the backbone and the input projections of one DETR or Deformable DETR checkpoint
    (every model it is installed on must share those weights: a sweep's probes of one checkpoint do)."""

    def __init__(self, max_bytes: int = DEFAULT_SWEEP_CACHE_MB * MB) -> None:
        self.max_bytes = max_bytes
        self.records: dict[bytes, dict[str, Any]] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.uncached = 0  # batches computed without being held: beyond the bound
        self._hit: dict[str, Any] | None = None
        self._recording: dict[str, Any] | None = None

    def summary(self) -> dict:
        """What the report records: batches held, hits, misses, bytes held and the bound."""
        return {
            "batches_held": len(self.records),
            "hits": self.hits,
            "misses": self.misses,
            "batches_beyond_bound": self.uncached,
            "mb_held": round(self.bytes / MB, 3),
            "max_mb": round(self.max_bytes / MB, 3),
        }

    @contextlib.contextmanager
    def installed(self, model: nn.Module) -> Iterator[None]:
        """Serve `model`'s backbone and input projections from the cache while inside; restore them after."""
        core = getattr(model, "model", model)
        modules = {"backbone": core.backbone, **_projections(core)}
        handles = [
            model.register_forward_pre_hook(self._begin, with_kwargs=True),
            model.register_forward_hook(self._end, always_call=True),
        ]
        for name, module in modules.items():
            module.forward = self._serving(name, module.forward)  # an instance attribute shadows the class's
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for module in modules.values():
                del module.forward

    def _begin(self, _model: nn.Module, args: tuple, kwargs: dict) -> None:
        pixel_values = kwargs.get("pixel_values", args[0] if args else None)
        pixel_mask = kwargs.get("pixel_mask", args[1] if len(args) > 1 else None)
        key = _batch_key(pixel_values, pixel_mask)
        self._hit = self.records.get(key)
        self._recording = None if self._hit is not None else {"key": key}
        if self._hit is not None:
            self.hits += 1
        else:
            self.misses += 1

    def _end(self, *_: Any) -> None:
        recording, self._recording, self._hit = self._recording, None, None
        if recording is None or "backbone" not in recording:
            return
        key = recording.pop("key")
        recording["backbone"] = _stand_ins(recording["backbone"])
        size = sum(t.numel() * t.element_size() for t in tree_leaves(recording) if _holds_memory(t))
        if self.bytes + size > self.max_bytes:
            self.uncached += 1
            return
        self.records[key] = recording
        self.bytes += size

    def _serving(self, name: str, forward):
        def serve(*args: Any, **kwargs: Any) -> Any:
            if self._hit is not None:
                return self._hit[name]
            output = forward(*args, **kwargs)
            if self._recording is not None:
                self._recording[name] = output
            return output

        return serve


def _projections(core: nn.Module) -> dict[str, nn.Module]:
    """DETR's one input projection, or Deformable DETR's one per feature level."""
    if isinstance(getattr(core, "input_proj", None), nn.ModuleList):
        return {f"input_proj.{level}": module for level, module in enumerate(core.input_proj)}
    if isinstance(getattr(core, "input_projection", None), nn.Module):
        return {"input_projection": core.input_projection}
    raise TypeError(f"{type(core).__name__} has neither input_proj levels nor an input_projection")


def _batch_key(pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (pixel_values, pixel_mask):
        if tensor is None:
            digest.update(b"none")
            continue
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.digest()


def _stand_ins(features: list) -> list:
    """The backbone's (feature map, mask) pairs with each map replaced by a zero-stride tensor of its shape
    and dtype: on a hit the projections are served from the cache, and the rest reads only the shape."""
    return [(_stand_in(feature_map), mask) for feature_map, mask in features]


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=tensor.dtype, device=tensor.device).expand(tensor.shape)


def _holds_memory(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and 0 not in value.stride()
