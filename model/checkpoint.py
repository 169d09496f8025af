"""The gsmlp gated checkpoint: a Hugging Face folder plus gsmlp.json describing each gated FFN.

    config.json               the base transformers config
    preprocessor_config.json  resize / normalisation
    model.safetensors         the full state dict: FFN weights (pruned widths), gates, thresholds
    gsmlp.json                {"format": "gsmlp-gated", "version": 1, "family", "layers", "calibration"}

Each `layers` entry ("encoder.0", ...) holds hidden (after pruning), dense_hidden, block_size, rank
(null without a gate), threshold and mode. Fields that older versions wrote and this one no longer reads are
ignored.

One source of truth: a value stored twice is checked to agree. A layer's threshold is in gsmlp.json and in
model.safetensors (the module's buffer), its dense_hidden in gsmlp.json and config.json (encoder_ffn_dim /
decoder_ffn_dim): a disagreement is refused, naming both files. Every entry is checked the same way when it
is written as when it is read (check_layer_entry), with its exact JSON type: "16" or 16.0 for an integer,
true for a number, is refused, never cast.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory, write_json_atomic
from gsmlp.model.detector import LoadedDetector, build_detector, read_config
from gsmlp.model.gated_mlp import MODES, GatedSparseMLP, MicroGate
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.weights import load_strict, read_json, read_safetensors, write_safetensors
from gsmlp.model.wrap import gated_layers, wrap_ffns

GSMLP_META = "gsmlp.json"
FORMAT = "gsmlp-gated"
VERSION = 1
LAYER_FIELDS = ("hidden", "dense_hidden", "block_size", "rank", "threshold", "mode")
# Bounds that no calibration writes past (calibrate's --block-size and --rank ranges): a value beyond one is
# a damaged file, refused before anything is allocated for it.
MAX_BLOCK_SIZE = 8192
MAX_RANK = 4096


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
    for name, entry in meta["layers"].items():  # what is written is checked as it will be read
        check_layer_entry(Path(path) / GSMLP_META, name, entry)
    # safetensors refuses tensors that share memory; a contiguous copy of each is what it stores.
    state_dict = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    with atomic_directory(path) as folder:
        model.config.to_json_file(str(folder / "config.json"))
        detector.preprocess.save(folder / "preprocessor_config.json")
        write_safetensors(state_dict, folder / "model.safetensors", metadata={"format": "pt"})
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
        check_layer_entry(where, name, entry)
    return meta


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_layer_entry(where: Path, name: str, entry: object) -> None:
    """One `layers` entry as gsmlp writes it: every field there, with its JSON type and in its range."""
    missing = [f for f in LAYER_FIELDS if not isinstance(entry, dict) or f not in entry]
    if missing:
        raise GsmlpError(f"{where}: layer {name!r} lacks {', '.join(missing)}")
    at = f"{where}: layer {name!r}"
    for key, high in (("hidden", None), ("dense_hidden", None), ("block_size", MAX_BLOCK_SIZE)):
        value = entry[key]
        if not _is_int(value) or value < 1 or (high is not None and value > high):
            bound = f" and at most {high}" if high else ""
            raise GsmlpError(f"{at} has {key} {value!r}; it must be an integer >= 1{bound}")
    rank = entry["rank"]
    if rank is not None and (not _is_int(rank) or not 1 <= rank <= MAX_RANK):
        raise GsmlpError(f"{at} has rank {rank!r}; it must be null (no gate) or an integer 1..{MAX_RANK}")
    threshold = entry["threshold"]
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise GsmlpError(f"{at} has threshold {threshold!r}; it must be a finite number")
    if entry["hidden"] > entry["dense_hidden"]:
        raise GsmlpError(
            f"{at} has hidden {entry['hidden']} > dense_hidden {entry['dense_hidden']}; pruning only narrows"
        )
    if entry["mode"] not in MODES:
        raise GsmlpError(f"{at} has mode {entry['mode']!r}; choose one of {', '.join(MODES)}")
    if entry["mode"] == "gated" and rank is None:
        raise GsmlpError(f"{at} is in mode 'gated' but has no gate (rank null)")


def _rebuild_layer(layer: GatedSparseMLP, entry: dict, name: str, where: Path) -> None:
    """Give `layer` the widths, gate and buffers the checkpoint describes (weights come later)."""
    hidden, d_model, rank, threshold = entry["hidden"], layer.d_model, entry["rank"], entry["threshold"]
    if entry["dense_hidden"] != layer.dense_hidden:
        raise GsmlpError(
            f"{where}: layer {name!r} has dense_hidden {entry['dense_hidden']}, but "
            f"{where.with_name('config.json')} gives its FFN {layer.dense_hidden} neurons; the two files "
            "come from different models"
        )
    layer.block_size = entry["block_size"]
    if hidden != layer.hidden:
        layer.fc1 = nn.Linear(d_model, hidden)
        layer.fc2 = nn.Linear(hidden, d_model)
    if rank is not None:
        layer.attach_gate(MicroGate(d_model, layer.num_blocks, rank), threshold)
    layer.threshold.fill_(threshold)


def _check_thresholds_agree(folder: Path, layers: dict[str, GatedSparseMLP], entries: dict) -> None:
    """Each threshold is stored twice (gsmlp.json, and the module's buffer in model.safetensors): they must
    be the same number, or the checkpoint is two checkpoints mixed."""
    for name, layer in layers.items():
        stored = float(layer.threshold)
        written = float(torch.tensor(entries[name]["threshold"], dtype=layer.threshold.dtype))
        if not stored == written:  # NaN in the weights file disagrees with every number too
            raise GsmlpError(
                f"layer {name!r}: {folder / GSMLP_META} gives threshold {entries[name]['threshold']!r}, but "
                f"{folder / 'model.safetensors'} holds {stored!r}; the two files disagree (mixed from two "
                "calibrations?): re-run gsmlp calibrate"
            )


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
    _check_thresholds_agree(folder, layers, meta["layers"])
    for name, layer in layers.items():
        layer.set_mode(meta["layers"][name]["mode"])
    make_padding_invariant(model)
    if any(layer.mode == "gated" for layer in layers.values()):
        # Gated FFNs run the compiled kernel (PyTorch reference where it is not built, with one warning).
        from gsmlp.model.kernel_hook import install

        install(model)
    preprocess = PreprocessConfig.from_json(folder / "preprocessor_config.json")
    return LoadedDetector(model.eval(), family, preprocess, str(folder), gated=meta)
