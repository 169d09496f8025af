"""Real FFN inputs for the benchmark: run a (calibrated, gated) detector on images and keep each gated
FFN's input, so the kernel is timed on the masks its trained gate produces for real tokens."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.model.detector import LoadedDetector
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.wrap import gated_layers, gated_slots
from gsmlp.paths import escapes, require_folder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class RecordedLayer:
    name: str
    layer: GatedSparseMLP
    inputs: torch.Tensor  # [tokens, d_model]: every token this FFN saw


def record_ffn_inputs(model: nn.Module, run: callable) -> list[RecordedLayer]:
    """Call `run()` (one or more forward passes) and collect the input of every gated GatedSparseMLP."""
    gated = [(slot.path, layer) for slot, layer in gated_slots(model) if layer.gate is not None]
    if not gated:
        raise GsmlpError(
            "the model has no GatedSparseMLP with a micro-gate: give a calibrated gated checkpoint"
        )
    seen: dict[str, list[torch.Tensor]] = {name: [] for name, _ in gated}
    hooks = [
        m.register_forward_pre_hook(
            lambda _m, args, name=name: seen[name].append(args[0].detach().flatten(0, -2))
        )
        for name, m in gated
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    return [RecordedLayer(name, m, torch.cat(seen[name])) for name, m in gated if seen[name]]


def image_files(data: str | Path, limit: int) -> list[Path]:
    folder = require_folder(data, "--data")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files = []
    for path in found:  # read only what --data holds: a link out of it is named and left alone
        outside = escapes(folder, path)
        if outside is None:
            files.append(path)
        else:
            print(f"warning: skipping {path}: it links to {outside}, outside --data {data}", file=sys.stderr)
    if not files:
        raise GsmlpError(f"--data {data}: no {'/'.join(IMAGE_SUFFIXES)} images in it")
    return files[:limit]


def record_from_checkpoint(
    loaded: LoadedDetector, model_spec: str, data: str, images: int
) -> list[RecordedLayer]:
    """Run `images` images of `data` through `loaded` (the --masks-from checkpoint `model_spec`, as the
    command's loader loaded it) in gated mode, and record every gated FFN's inputs."""
    from gsmlp.model.pixels import read_rgb
    from gsmlp.model.processing import preprocess

    model = loaded.model.eval()
    for _, layer in gated_layers(model):
        if layer.gate is not None:
            layer.set_mode("gated")
            layer.kernel = None  # record with the reference; the benchmark times the kernel itself
    paths = image_files(data, images)
    used: list[Path] = []

    def run() -> None:
        for path in paths:
            try:
                rgb = read_rgb(path)
            except Exception as exc:  # pillow raises many types for damaged files; each one skips the image
                print(
                    f"warning: skipping unreadable image {path}: {type(exc).__name__}: {exc}", file=sys.stderr
                )
                continue
            batch = preprocess([rgb], loaded.preprocess)
            model(pixel_values=batch.pixel_values, pixel_mask=batch.pixel_mask)
            used.append(path)

    layers = record_ffn_inputs(model, run)
    if not used:
        raise GsmlpError(f"--data {data}: none of the {len(paths)} images could be read; nothing to time")
    for layer in layers:
        if not torch.isfinite(layer.inputs).all():
            raise GsmlpError(
                f"--masks-from {model_spec}: the inputs of {layer.name} hold NaN or infinite values on "
                f"{data}; the model is broken, and timing it would measure nothing"
            )
    return layers
