"""Per-FFN activation statistics, streamed over calibration images with bounded memory.

For every GatedSparseMLP the collector hooks `fc1` (input x, pre-activation) and accumulates, per hidden
neuron: how often it fires (ReLU > 0), the sum and maximum of its post-ReLU value, and the co-activation
counts between neurons (what the block permutation clusters). It also keeps a uniform reservoir of token
inputs x with the image each came from: fc1 is frozen, so a token's activations are recomputed exactly
from x, and the gates train and the thresholds calibrate on these tokens (held-out split by image).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from gsmlp.distributed import ONE_PROCESS, Group
from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_path, write_json_atomic
from gsmlp.model.placement import model_device, to_device
from gsmlp.model.processing import nonfinite_outputs
from gsmlp.model.weights import write_safetensors
from gsmlp.model.wrap import gated_layers

STATISTICS_FORMAT = "gsmlp-activation-statistics"
STATISTICS_VERSION = 1
IMAGE_SEED_STRIDE = 1_000_003  # > any image count: (seed, image) pairs never share a reservoir seed


class NoCalibrationImages(GsmlpError):
    """Not a single image reached the model: the data set is empty, or none of its images could be read."""


@dataclass
class LayerStatistics:
    """Accumulators of one FFN; every tensor has a fixed size, whatever the number of images."""

    name: str
    hidden: int
    d_model: int
    reservoir_size: int
    tokens: int = 0
    active_count: torch.Tensor = field(init=False)  # [H] float64: tokens where neuron > 0
    value_sum: torch.Tensor = field(init=False)  # [H] float64: sum of relu(pre)
    value_max: torch.Tensor = field(init=False)  # [H] float32
    coactive: torch.Tensor = field(init=False)  # [H, H] float64: tokens where both fire
    reservoir_x: torch.Tensor = field(init=False)  # [<=K, D] token inputs
    reservoir_image: torch.Tensor = field(init=False)  # [<=K] image index of each token
    reservoir_key: torch.Tensor = field(init=False)  # [<=K] random priority (smallest K kept)

    def __post_init__(self) -> None:
        self.active_count = torch.zeros(self.hidden, dtype=torch.float64)
        self.value_sum = torch.zeros(self.hidden, dtype=torch.float64)
        self.value_max = torch.zeros(self.hidden, dtype=torch.float32)
        self.coactive = torch.zeros(self.hidden, self.hidden, dtype=torch.float64)
        self.reservoir_x = torch.zeros(0, self.d_model)
        self.reservoir_image = torch.zeros(0, dtype=torch.int64)
        self.reservoir_key = torch.zeros(0)

    def update(self, x: torch.Tensor, pre: torch.Tensor, image: torch.Tensor, generator: torch.Generator):
        """x [N, D], pre [N, H] (fc1 output), image [N] global image index of each token.

        The reductions run where x is (a GPU under --device cuda); the accumulators stay on the CPU."""
        post = pre.float().clamp_min(0)
        fired = (post > 0).float()
        self.tokens += x.shape[0]
        self.active_count += fired.sum(0, dtype=torch.float64).cpu()
        self.value_sum += post.sum(0, dtype=torch.float64).cpu()
        self.value_max = torch.maximum(self.value_max, post.amax(0).cpu())
        # fp32 products of 0/1 values are exact below 2**24 tokens per batch; accumulate in fp64.
        self.coactive += (fired.T @ fired).double().cpu()
        self._sample(x.float().cpu(), image, generator)

    def _sample(self, x: torch.Tensor, image: torch.Tensor, generator: torch.Generator) -> None:
        # Reservoir by random keys: keeping the K smallest of i.i.d. uniform keys is a uniform sample
        # without replacement of everything seen so far, and it vectorises over a whole batch.
        keys = torch.rand(x.shape[0], generator=generator)
        all_keys = torch.cat([self.reservoir_key, keys])
        keep = all_keys.argsort()[: self.reservoir_size]
        self.reservoir_key = all_keys[keep]
        self.reservoir_x = torch.cat([self.reservoir_x, x])[keep]
        self.reservoir_image = torch.cat([self.reservoir_image, image])[keep]

    @property
    def frequency(self) -> torch.Tensor:
        """[H] fraction of tokens on which each neuron fired."""
        return self.active_count / max(self.tokens, 1)

    @property
    def mean_value(self) -> torch.Tensor:
        return self.value_sum / max(self.tokens, 1)

    @property
    def zero_fraction(self) -> float:
        """The inherent sparsity: fraction of this layer's ReLU outputs that were exactly zero."""
        return 1.0 - float(self.active_count.sum()) / max(self.tokens * self.hidden, 1)

    def merge(self, group: Group) -> None:
        """Become the statistics of every rank's images: counts and sums summed, maxima taken, and the
        reservoir the K smallest keys of all ranks' reservoirs (each rank kept its K smallest, so these are
        the K smallest of every token seen: the reservoir one process would have kept)."""
        if not group.distributed:
            return
        self.tokens = int(group.sum(torch.tensor([self.tokens]))[0])
        self.active_count = group.sum(self.active_count)
        self.value_sum = group.sum(self.value_sum)
        self.coactive = group.sum(self.coactive)
        self.value_max = group.max(self.value_max)
        parts = group.all_gather((self.reservoir_key, self.reservoir_x, self.reservoir_image))
        keys, xs, images = (torch.cat(column) for column in zip(*parts, strict=True))
        keep = keys.argsort()[: self.reservoir_size]
        self.reservoir_key, self.reservoir_x, self.reservoir_image = keys[keep], xs[keep], images[keep]

    def split(self, holdout_every: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train x, held-out x): every `holdout_every`-th image is held out, so no image is in both."""
        held = self.reservoir_image % holdout_every == 0
        return self.reservoir_x[~held], self.reservoir_x[held]


class StatisticsCollector:
    """Hooks every GatedSparseMLP's fc1 while images stream through the model."""

    def __init__(
        self,
        model: nn.Module,
        reservoir_size: int = 20000,
        seed: int = 0,
        group: Group = ONE_PROCESS,
        first_image: int = 0,
    ) -> None:
        """`first_image`: the global index of this rank's first image (its shard's start)."""
        self.model = model
        self.seed = seed
        self.group = group
        self.first_image = first_image
        self.generator = torch.Generator()
        self.layers: dict[str, LayerStatistics] = {}
        self._images_seen = 0
        self.images_per_rank: list[int] = []
        self._handles = []
        for name, layer in gated_layers(model):
            self.layers[name] = LayerStatistics(name, layer.hidden, layer.d_model, reservoir_size)
            self._handles.append(layer.fc1.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], pre: torch.Tensor) -> None:
            x = inputs[0]
            # Tokens are [batch, sequence, d_model]: the image of a token is its batch row.
            first = self.first_image + self._images_seen
            image = torch.arange(x.shape[0]).repeat_interleave(x[0, ..., 0].numel()) + first
            self.layers[name].update(
                x.reshape(-1, x.shape[-1]), pre.reshape(-1, pre.shape[-1]), image, self.generator
            )

        return record

    def run(self, batches: Iterable[Mapping[str, torch.Tensor]], total: int | None = None) -> dict:
        """Feed model-input batches (pixel_values, pixel_mask); returns {layer name: LayerStatistics}."""
        was_training = self.model.training
        device = model_device(self.model)
        self.model.eval()
        bar = tqdm(
            batches, total=total, desc="activation statistics", unit="batch", disable=not self.group.is_main
        )
        try:
            with torch.no_grad(), self.group.together("collecting activation statistics"):
                for batch in bar:
                    # Reservoir keys depend on the image's global index alone, not on which rank reads it.
                    self.generator.manual_seed(
                        self.seed * IMAGE_SEED_STRIDE + self.first_image + self._images_seen
                    )
                    outputs = self.model(**to_device(batch, device))
                    heads = ("logits", "pred_boxes")
                    broken = nonfinite_outputs(
                        {k: getattr(outputs, k) for k in heads if getattr(outputs, k, None) is not None}
                    )
                    if broken:
                        raise GsmlpError(
                            f"the model produced non-finite outputs on calibration image "
                            f"{self._images_seen + 1}: {broken}; its statistics would be meaningless"
                        )
                    self._images_seen += int(batch["pixel_values"].shape[0])
        finally:
            for handle in self._handles:
                handle.remove()
            self.model.train(was_training)
        self.images_per_rank = [int(n) for n in self.group.all_gather(self._images_seen)]
        self._images_seen = sum(self.images_per_rank)
        for stats in self.layers.values():
            stats.merge(self.group)
        if self._images_seen == 0:
            raise NoCalibrationImages("no calibration images were read: the calibration data set is empty")
        return self.layers

    @property
    def images(self) -> int:
        return self._images_seen


def save_statistics(layers: Mapping[str, LayerStatistics], folder: Path, images: int) -> None:
    """statistics.safetensors (tensors) + statistics.json (sizes, counts, per-layer zero fraction)."""
    tensors = {}
    for name, stats in layers.items():
        tensors[f"{name}.active_count"] = stats.active_count
        tensors[f"{name}.value_sum"] = stats.value_sum
        tensors[f"{name}.value_max"] = stats.value_max
        tensors[f"{name}.coactive"] = stats.coactive
        tensors[f"{name}.reservoir_x"] = stats.reservoir_x.contiguous()
        tensors[f"{name}.reservoir_image"] = stats.reservoir_image
    with atomic_path(folder / "statistics.safetensors") as tmp:
        write_safetensors(tensors, tmp)
    meta = {
        "format": STATISTICS_FORMAT,
        "version": STATISTICS_VERSION,
        "images": images,
        "layers": {
            name: {
                "hidden": s.hidden,
                "d_model": s.d_model,
                "tokens": s.tokens,
                "reservoir_size": s.reservoir_size,
                "zero_fraction": s.zero_fraction,
            }
            for name, s in layers.items()
        },
    }
    write_json_atomic(folder / "statistics.json", meta)


def load_statistics(folder: Path) -> dict[str, LayerStatistics]:
    meta_path = folder / "statistics.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GsmlpError(f"cannot read activation statistics {meta_path}: {exc}") from None
    if meta.get("format") != STATISTICS_FORMAT or meta.get("version") != STATISTICS_VERSION:
        raise GsmlpError(
            f"{meta_path}: format {meta.get('format')!r} version {meta.get('version')!r} is not "
            f"{STATISTICS_FORMAT!r} version {STATISTICS_VERSION}"
        )
    tensors = load_file(str(folder / "statistics.safetensors"))
    layers = {}
    for name, info in meta["layers"].items():
        stats = LayerStatistics(name, info["hidden"], info["d_model"], info["reservoir_size"], info["tokens"])
        stats.active_count = tensors[f"{name}.active_count"]
        stats.value_sum = tensors[f"{name}.value_sum"]
        stats.value_max = tensors[f"{name}.value_max"]
        stats.coactive = tensors[f"{name}.coactive"]
        stats.reservoir_x = tensors[f"{name}.reservoir_x"]
        stats.reservoir_image = tensors[f"{name}.reservoir_image"]
        stats.reservoir_key = torch.zeros(len(stats.reservoir_image))
        layers[name] = stats
    return layers
