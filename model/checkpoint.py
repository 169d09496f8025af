"""The gsmlp gated checkpoint: a Hugging Face folder plus gsmlp.json describing each gated FFN.

    config.json               the base transformers config
    preprocessor_config.json  resize / normalisation
    model.safetensors         the full state dict: FFN weights (pruned widths), gates, thresholds
    gsmlp.json                {"format": "gsmlp-gated", "version": 1, "family", "layers", "calibration"}

Each `layers` entry ("encoder.0", ...) holds hidden (after pruning), dense_hidden, block_size, rank
(null without a gate), threshold and mode. Fields that older versions wrote and this one no longer reads are
ignored.
"""

from __future__ import annotations

import math
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory, write_json_atomic
from gsmlp.model.detector import LoadedDetector, build_detector, read_config
from gsmlp.model.gated_mlp import MODES, GatedSparseMLP, MicroGate
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.weights import load_strict, read_json, read_safetensors
from gsmlp.model.wrap import gated_layers, wrap_ffns

GSMLP_META = "gsmlp.json"
FORMAT = "gsmlp-gated"
VERSION = 1
LAYER_FIELDS = ("hidden", "dense_hidden", "block_size", "rank", "threshold", "mode")


def layer_meta(layer: GatedSparseMLP) -> dict:
    return {
        "hidden": layer.hidden,
        "dense_hidden": layer.dense_hidden,
        "block_size": layer.block_size,
        "rank": layer.gate.rank if layer.gate is not None else None,
        "threshold": float(layer.threshold),
        "mode": layer.mode,
    }


def save_gated(path: str | Path, detector: LoadedDetector, calibration: dict) -> None:
    """Write `detector` (FFNs pruned / gated by calibration) as a gated checkpoint folder, atomically."""
    model = detector.model
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "family": detector.family,
        "layers": {name: layer_meta(layer) for name, layer in gated_layers(model)},
        "calibration": calibration,
    }
    # safetensors refuses tensors that share memory; a contiguous copy of each is what it stores.
    state_dict = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    with atomic_directory(path) as folder:
        model.config.to_json_file(str(folder / "config.json"))
        detector.preprocess.save(folder / "preprocessor_config.json")
        save_file(state_dict, str(folder / "model.safetensors"), metadata={"format": "pt"})
        write_json_atomic(folder / GSMLP_META, meta)


def read_meta(folder: Path) -> dict:
    meta = read_json(folder / GSMLP_META)
    where = folder / GSMLP_META
    if meta.get("format") != FORMAT:
        raise GsmlpError(f"{where}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise GsmlpError(
            f"{where}: version {meta.get('version')!r} is not supported; this gsmlp reads version {VERSION}"
        )
    layers = meta.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise GsmlpError(f"{where}: 'layers' must map layer names (encoder.0, ...) to their settings")
    for name, entry in layers.items():
        missing = [f for f in LAYER_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise GsmlpError(f"{where}: layer {name!r} lacks {', '.join(missing)}")
        if entry["mode"] not in MODES:
            raise GsmlpError(f"{where}: layer {name!r} has mode {entry['mode']!r}; choose one of {MODES}")
    return meta


def _rebuild_layer(layer: GatedSparseMLP, entry: dict, name: str, where: Path) -> None:
    """Give `layer` the widths, gate and buffers the checkpoint describes (weights come later)."""
    try:
        hidden, d_model = int(entry["hidden"]), layer.d_model
        layer.block_size = int(entry["block_size"])
        layer.dense_hidden = int(entry["dense_hidden"])
        threshold = float(entry["threshold"])
        rank = None if entry["rank"] is None else int(entry["rank"])
    except (TypeError, ValueError) as exc:
        raise GsmlpError(f"{where}: layer {name!r} has a bad value: {exc}") from None
    if not math.isfinite(threshold) or (rank is not None and rank < 1):
        raise GsmlpError(
            f"{where}: layer {name!r}: threshold must be finite and rank >= 1, got {threshold}, {rank}"
        )
    if not 0 < hidden <= layer.dense_hidden or layer.block_size < 1:
        raise GsmlpError(
            f"{where}: layer {name!r}: need 0 < hidden <= dense_hidden and block_size >= 1, "
            f"got {hidden}, {layer.dense_hidden}, {layer.block_size}"
        )
    if hidden != layer.hidden:
        layer.fc1 = nn.Linear(d_model, hidden)
        layer.fc2 = nn.Linear(hidden, d_model)
    if rank is not None:
        layer.attach_gate(MicroGate(d_model, layer.num_blocks, rank), threshold)
    layer.threshold.fill_(threshold)


def load_gated(path: str | Path) -> LoadedDetector:
    """Rebuild a gated detector: pruned FFN widths, gates, modes; weights loaded strictly."""
    folder = Path(path)
    meta = read_meta(folder)
    config, family = read_config(folder / "config.json")
    if meta.get("family") != family:
        where = folder / GSMLP_META
        raise GsmlpError(f"{where}: family {meta.get('family')!r}, but config.json holds {family!r}")
    model = wrap_ffns(build_detector(config, family))
    layers = dict(gated_layers(model))
    if list(layers) != list(meta["layers"]):
        raise GsmlpError(
            f"{folder / GSMLP_META}: layers {', '.join(meta['layers'])} do not match the model's "
            f"FFNs {', '.join(layers)}"
        )
    for name, layer in layers.items():
        _rebuild_layer(layer, meta["layers"][name], name, folder / GSMLP_META)
    load_strict(model, read_safetensors(folder / "model.safetensors"), folder / "model.safetensors")
    for name, layer in layers.items():
        layer.set_mode(meta["layers"][name]["mode"])
    make_padding_invariant(model)
    if any(layer.mode == "gated" for layer in layers.values()):
        # Gated FFNs run the compiled kernel (PyTorch reference where it is not built, with one warning).
        from gsmlp.model.kernel_hook import install

        install(model)
    preprocess = PreprocessConfig.from_json(folder / "preprocessor_config.json")
    return LoadedDetector(model.eval(), family, preprocess, str(folder), gated=meta)
