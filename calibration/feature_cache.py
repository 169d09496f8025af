"""The sweep's cache: what an evaluation computes before the transformer, computed once per batch.

`calibrate --eval-data` evaluates the model on the same batches many times: dense, gated, and at every sweep
point. Reading, decoding and preprocessing the images, the backbone and the input projections do not depend
on the sparsity target (gating acts on the transformer's FFNs only), so the first evaluation records them
per batch, and every later one reads the recorded batches and runs only the transformer.

What is held per batch: the projections' outputs (`d_model` channels per feature level), the backbone's
(downsampled) masks, and the batch's image ids and sizes. The pixels and the backbone's feature maps reach
only the backbone and the projections, and otherwise only their shapes are read: a hit hands on zero-stride
stand-ins of their shape, which hold no memory, and the pixel mask is rebuilt from the image sizes.

The cache is bounded in bytes. A batch beyond the bound is computed as without the cache; a whole pass
whose batches are all held is replayed without opening an image. Batches are keyed by their image ids and a
pass by the dataset, batch size, limit and preprocessing, so a different batch can never hit.

Memory per image (float32): DETR `d_model * H/32 * W/32 * 4` bytes (DETR-R50 at 800 x 800: 0.64 MB);
Deformable DETR the same over its levels (H/8 ... H/64: Deformable-DETR-R50 at 800 x 800: 13.6 MB).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from gsmlp.calibration.options import DEFAULT_SWEEP_CACHE_MB
from gsmlp.model.processing import Batch, PreprocessConfig, pixel_mask_for, preprocess

MB = 1 << 20
BatchKey = tuple[int, ...]


@dataclass
class _Held:
    """One batch as a hit replays it: the batch with stand-in pixels, and what the cached modules returned."""

    batch: Batch
    outputs: dict[str, Any]


@dataclass(frozen=True)
class _Pass:
    """A pass whose every batch is held: their keys in order, and the images it found unreadable."""

    keys: list[BatchKey]
    unreadable: list[str]


class FeatureCache:
    """Per-batch outputs of the backbone and the input projections of one DETR or Deformable DETR checkpoint
    (every model it is installed on must share those weights: a sweep's probes of one checkpoint do)."""

    def __init__(self, max_bytes: int = DEFAULT_SWEEP_CACHE_MB * MB) -> None:
        self.max_bytes = max_bytes
        self.records: dict[BatchKey, _Held] = {}
        self.passes: dict[tuple, _Pass] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.uncached = 0  # batches computed without being held: beyond the bound
        self._hit: dict[str, Any] | None = None
        self._recording: dict[str, Any] | None = None
        self._installed = 0

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
        """Serve `model`'s backbone and input projections from the cache inside `batches`' passes."""
        core = getattr(model, "model", model)
        modules = {"backbone": core.backbone, **_projections(core)}
        for name, module in modules.items():
            module.forward = self._serving(name, module.forward)  # an instance attribute shadows the class's
        self._installed += 1
        try:
            yield
        finally:
            self._installed -= 1
            for module in modules.values():
                del module.forward

    def batches(
        self, dataset, batch_size: int, limit: int | None, config: PreprocessConfig
    ) -> Iterator[tuple[BatchKey, Batch]]:
        """(image ids, batch) of `dataset.batches` after preprocessing, for a model this cache is installed
        on: the model call made before the next item is served from the cache or recorded into it."""
        if not self._installed:
            # A hit's pixels are stand-ins: a model without the cache's modules would compute on them.
            raise RuntimeError("FeatureCache.batches needs the cache installed on the model it feeds")
        signature = (str(dataset.image_dir), tuple(dataset.image_ids), batch_size, limit, config)
        held = self.passes.get(signature)
        if held is not None:
            yield from self._replay(held, dataset)
            return
        keys, complete = [], True
        for items in dataset.batches(batch_size, limit):
            key = tuple(image_id for image_id, _ in items)
            if key in self.records:
                yield from self._serve(key)
            else:
                batch = preprocess([image for _, image in items], config)
                yield from self._record(key, batch)
            keys.append(key)
            complete &= key in self.records
        if complete:
            self.passes[signature] = _Pass(keys, list(dataset.unreadable))

    def _replay(self, held: _Pass, dataset) -> Iterator[tuple[BatchKey, Batch]]:
        dataset.unreadable.extend(name for name in held.unreadable if name not in dataset.unreadable)
        for key in held.keys:
            yield from self._serve(key)

    def _serve(self, key: BatchKey) -> Iterator[tuple[BatchKey, Batch]]:
        record = self.records[key]
        self.hits += 1
        batch = record.batch
        self._hit = record.outputs
        try:
            yield key, replace(batch, pixel_mask=pixel_mask_for(batch.resized_sizes, batch.pixel_mask.shape))
        finally:
            self._hit = None

    def _record(self, key: BatchKey, batch: Batch) -> Iterator[tuple[BatchKey, Batch]]:
        self.misses += 1
        self._recording = recording = {}
        try:
            yield key, batch
        finally:
            self._recording = None
        if "backbone" not in recording:
            return  # the model was not called on this batch
        recording["backbone"] = [
            (_stand_in(feature_map), mask) for feature_map, mask in recording["backbone"]
        ]
        size = sum(t.numel() * t.element_size() for t in tree_leaves(recording) if _holds_memory(t))
        if self.bytes + size > self.max_bytes:
            self.uncached += 1
            return
        held_batch = replace(
            batch, pixel_values=_stand_in(batch.pixel_values), pixel_mask=_stand_in(batch.pixel_mask)
        )
        self.records[key] = _Held(held_batch, recording)
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


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor of `tensor`'s shape, dtype and device that holds no memory (every stride 0)."""
    return torch.zeros((), dtype=tensor.dtype, device=tensor.device).expand(tensor.shape)


def _holds_memory(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and (value.dim() == 0 or any(value.stride()))
