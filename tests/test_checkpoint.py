"""The gsmlp gated checkpoint: pruned widths, gates and modes survive a save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from gsmlp import kernels
from gsmlp.cli import main
from gsmlp.errors import GsmlpError
from gsmlp.model import kernel_hook
from gsmlp.model.checkpoint import load_gated, save_gated
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.model.loaders import load_detector
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.wrap import gated_layers
from tests.conftest import make_tiny_model, save_hf_dir


def _prune(layer: GatedSparseMLP, keep: torch.Tensor) -> None:
    """Drop hidden neurons the way SIBS does: narrower fc1 rows and fc2 columns."""
    fc1 = nn.Linear(layer.d_model, int(keep.sum()))
    fc2 = nn.Linear(int(keep.sum()), layer.d_model)
    with torch.no_grad():
        fc1.weight.copy_(layer.fc1.weight[keep])
        fc1.bias.copy_(layer.fc1.bias[keep])
        fc2.weight.copy_(layer.fc2.weight[:, keep])
        fc2.bias.copy_(layer.fc2.bias)
    layer.fc1, layer.fc2 = fc1, fc2


def _gated_detector(tmp_path: Path, family: str):
    detector = load_detector(save_hf_dir(make_tiny_model(family), tmp_path / "base"), block_size=16)
    detector.preprocess = PreprocessConfig(shortest_edge=256)
    layers = dict(gated_layers(detector.model))
    torch.manual_seed(1)
    _prune(layers["encoder.0"], torch.arange(layers["encoder.0"].hidden) % 3 != 0)
    layers["encoder.0"].attach_gate(MicroGate(32, layers["encoder.0"].num_blocks, 4), threshold=-0.25)
    layers["encoder.0"].set_mode("gated")
    layers["encoder.1"].set_mode("static")
    layers["decoder.0"].set_mode("oracle")
    return detector


def _outputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 96, 128, dtype=torch.int64)
    mask[1, 64:, 96:] = 0
    with torch.no_grad():
        out = model(pixel_values=pixels, pixel_mask=mask)
    return out.logits, out.pred_boxes


def test_round_trip_is_identical(tmp_path: Path, family: str) -> None:
    detector = _gated_detector(tmp_path, family)
    save_gated(tmp_path / "gated", detector, {"method": "mgs", "images": 3})
    loaded = load_detector(tmp_path / "gated")
    assert loaded.family == family
    assert loaded.preprocess == PreprocessConfig(shortest_edge=256)
    assert loaded.gated["calibration"] == {"method": "mgs", "images": 3}
    layers = dict(gated_layers(loaded.model))
    dense_hidden = layers["encoder.1"].dense_hidden
    assert loaded.gated["layers"]["encoder.0"] == {
        "hidden": dense_hidden - len(range(0, dense_hidden, 3)),
        "dense_hidden": dense_hidden,
        "block_size": 16,
        "rank": 4,
        "threshold": -0.25,
        "mode": "gated",
    }
    assert [layer.mode for layer in layers.values()] == ["gated", "static", "oracle", "dense"]
    kernel_hook.uninstall(loaded.model)  # bit-exactness is the reference path's promise
    for expected, actual in zip(_outputs(detector.model), _outputs(loaded.model), strict=True):
        assert torch.equal(expected, actual)


@pytest.mark.skipif(not kernels.available(), reason="the gsmlp_kernels library is not built")
def test_gated_layers_load_with_the_compiled_kernel(tmp_path: Path) -> None:
    detector = _gated_detector(tmp_path, "detr")
    save_gated(tmp_path / "gated", detector, {})
    loaded = load_detector(tmp_path / "gated")
    layers = dict(gated_layers(loaded.model))
    assert layers["encoder.0"].kernel is not None  # the gated layer
    assert layers["encoder.1"].kernel is None  # static: nothing to compute sparsely
    for expected, actual in zip(_outputs(detector.model), _outputs(loaded.model), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.fixture
def gated_dir(tmp_path: Path) -> Path:
    save_gated(tmp_path / "gated", _gated_detector(tmp_path, "detr"), {})
    return tmp_path / "gated"


def _edit_meta(folder: Path, edit) -> None:
    meta = json.loads((folder / "gsmlp.json").read_text())
    edit(meta)
    (folder / "gsmlp.json").write_text(json.dumps(meta))


def test_unknown_format_is_refused(gated_dir: Path) -> None:
    _edit_meta(gated_dir, lambda meta: meta.update(format="other-gates"))
    with pytest.raises(GsmlpError, match="format is 'other-gates', expected 'gsmlp-gated'"):
        load_gated(gated_dir)


def test_unknown_version_is_refused(gated_dir: Path) -> None:
    _edit_meta(gated_dir, lambda meta: meta.update(version=2))
    with pytest.raises(GsmlpError, match="version 2 is not supported; this gsmlp reads version 1"):
        load_gated(gated_dir)


def test_layer_names_must_match_the_model(gated_dir: Path) -> None:
    _edit_meta(gated_dir, lambda meta: meta["layers"].pop("decoder.1"))
    with pytest.raises(GsmlpError, match=r"layers encoder\.0, encoder\.1, decoder\.0 do not match"):
        load_gated(gated_dir)


def test_layer_settings_must_be_complete(gated_dir: Path) -> None:
    _edit_meta(gated_dir, lambda meta: meta["layers"]["encoder.1"].pop("block_size"))
    with pytest.raises(GsmlpError, match=r"layer 'encoder\.1' lacks block_size"):
        load_gated(gated_dir)


def test_shapes_must_match_the_settings(gated_dir: Path) -> None:
    _edit_meta(gated_dir, lambda meta: meta["layers"]["encoder.0"].update(rank=6))
    with pytest.raises(GsmlpError, match=r"shape mismatches: model\.encoder\.layers\.0\.mlp\.gate\.down"):
        load_gated(gated_dir)


def test_corrupt_meta_is_refused(gated_dir: Path) -> None:
    (gated_dir / "gsmlp.json").write_text('{"format": "gsmlp-gated", ')
    with pytest.raises(GsmlpError, match=r"gsmlp\.json is corrupt \(truncated, or not valid JSON\)"):
        load_detector(gated_dir)


def test_info_shows_each_layers_gating(gated_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", str(gated_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if "coder." in line}
    assert rows["encoder.0"] == ["encoder.0", "32", "170", "256", "16", "4", "-0.25", "gated"]
    assert rows["encoder.1"][-1] == "static" and rows["decoder.0"][-1] == "oracle"


# --- issue 27: what is written is checked as it is read; one source of truth -----------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_threshold_is_never_written(tmp_path: Path, bad: float) -> None:
    """Neither into a checkpoint nor into an ONNX file: both refuse it naming the layer, and write nothing."""
    from gsmlp.exporter.export import ExportOptions, export_onnx

    detector = _gated_detector(tmp_path, "detr")
    dict(gated_layers(detector.model))["encoder.0"].threshold.fill_(bad)
    with pytest.raises(GsmlpError, match=rf"layer 'encoder.0' has threshold {bad}"):
        save_gated(tmp_path / "ckpt", detector, calibration={})
    dict(gated_layers(detector.model))["decoder.0"].set_mode("dense")  # oracle mode does not export
    with pytest.raises(GsmlpError, match=rf"GatedSparseMLP node .* has threshold {bad}"):
        export_onnx(detector.model, tmp_path / "g.onnx", ExportOptions(height=64, width=64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_the_two_copies_of_a_threshold_must_agree(gated_dir: Path) -> None:
    meta = json.loads((gated_dir / "gsmlp.json").read_text())
    meta["layers"]["encoder.0"]["threshold"] = 0.75
    (gated_dir / "gsmlp.json").write_text(json.dumps(meta))
    with pytest.raises(GsmlpError, match=r"gsmlp.json gives threshold 0.75, but .*model.safetensors holds"):
        load_gated(gated_dir)


@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden", "16"), ("hidden", 16.0), ("block_size", True), ("rank", 4.5), ("threshold", "0.1"),
     ("threshold", None), ("mode", 1), ("rank", 10**9)],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_refused_not_cast(gated_dir: Path, key: str, value) -> None:
    meta = json.loads((gated_dir / "gsmlp.json").read_text())
    meta["layers"]["encoder.0"][key] = value
    (gated_dir / "gsmlp.json").write_text(json.dumps(meta))
    with pytest.raises(GsmlpError, match=rf"layer 'encoder.0' has {key} {value!r}"):
        load_gated(gated_dir)
