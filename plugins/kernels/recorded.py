"""Real FFN inputs for the benchmark: run a (calibrated, gated) detector on images and keep each gated
FFN's input, so the kernel is timed on the masks its trained gate produces for real tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class RecordedLayer:
    name: str
    layer: GatedSparseMLP
    inputs: torch.Tensor  # [tokens, d_model]: every token this FFN saw


def record_ffn_inputs(model: nn.Module, run: callable) -> list[RecordedLayer]:
    """Call `run()` (one or more forward passes) and collect the input of every gated GatedSparseMLP."""
    gated = [(n, m) for n, m in model.named_modules() if isinstance(m, GatedSparseMLP) and m.gate is not None]
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
    folder = Path(data)
    if not folder.is_dir():
        raise GsmlpError(f"--data {data}: not a folder; give a folder of images (searched recursively)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GsmlpError(f"--data {data}: no {'/'.join(IMAGE_SUFFIXES)} images in it")
    return files[:limit]


def record_from_checkpoint(model_spec: str, data: str, images: int) -> list[RecordedLayer]:
    """Load `model_spec` with gsmlp.model.loaders, run `images` images of `data` through it in gated mode."""
    try:
        from PIL import Image

        from gsmlp.model.loaders import load_detector
        from gsmlp.model.processing import preprocess
    except ImportError as exc:
        raise GsmlpError(f"--masks-from needs the model loaders of gsmlp ({exc.name} is missing)") from None
    loaded = load_detector(model_spec)
    model = loaded.model.eval()
    for module in model.modules():
        if isinstance(module, GatedSparseMLP) and module.gate is not None:
            module.set_mode("gated")
            module.kernel = None  # record with the reference; the benchmark times the kernel itself
    paths = image_files(data, images)

    def run() -> None:
        for path in paths:
            with Image.open(path) as image:
                batch = preprocess([image], loaded.preprocess)
            model(pixel_values=batch.pixel_values, pixel_mask=batch.pixel_mask)

    return record_ffn_inputs(model, run)
