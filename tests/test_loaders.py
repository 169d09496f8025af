"""load_detector: every accepted form loads to the same function; every bad input gets a clear GsmlpError."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import DeformableDetrForObjectDetection, DetrForObjectDetection

from gsmlp.errors import GsmlpError
from gsmlp.model import zoo
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.configs import deformable_detr_r50_config, detr_r50_config
from gsmlp.model.loaders import load_detector
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.sampling import transformers_sampling
from gsmlp.model.wrap import gated_layers
from tests.conftest import make_tiny_model, save_hf_dir


def _pixels(height: int = 96, width: int = 128) -> torch.Tensor:
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(3))


def _same_outputs(expected: torch.nn.Module, actual: torch.nn.Module, pixels: torch.Tensor) -> None:
    """Bit for bit, with the sampling transformers computes: a loaded Deformable DETR samples on the gsmlp
    op where it is built (its own agreement, within rounding, is tests/test_sampling.py's)."""
    with torch.no_grad(), transformers_sampling(actual):
        a, b = expected(pixel_values=pixels), actual(pixel_values=pixels)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.pred_boxes, b.pred_boxes)


@pytest.fixture
def tiny_dir(tmp_path: Path, family: str) -> Path:
    return save_hf_dir(make_tiny_model(family), tmp_path / "tiny")


@pytest.fixture
def detr_dir(tmp_path: Path) -> Path:
    return save_hf_dir(make_tiny_model("detr"), tmp_path / "tiny-detr")


def test_hf_folder_loads_wrapped_and_identical(tiny_dir: Path, family: str) -> None:
    detector = load_detector(tiny_dir)
    assert detector.family == family
    assert detector.source == str(tiny_dir)
    assert detector.gated is None
    assert detector.preprocess == PreprocessConfig()
    assert not detector.model.training
    assert len(list(gated_layers(detector.model))) == 4
    _same_outputs(make_tiny_model(family), detector.model, _pixels())


def test_preprocessor_config_is_read(detr_dir: Path) -> None:
    PreprocessConfig(shortest_edge=320, longest_edge=512).save(detr_dir / "preprocessor_config.json")
    assert load_detector(detr_dir).preprocess == PreprocessConfig(shortest_edge=320, longest_edge=512)


def test_bin_folder_loads_and_safetensors_is_preferred(tmp_path: Path) -> None:
    folder = save_hf_dir(make_tiny_model("detr"), tmp_path / "tiny")
    state_dict = load_file(folder / "model.safetensors")
    torch.save(state_dict, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    _same_outputs(make_tiny_model("detr"), load_detector(folder).model, _pixels())
    # With both present, the safetensors file is the one read: a broken .bin goes unnoticed.
    save_file(state_dict, folder / "model.safetensors")
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    load_detector(folder)


def test_builtin_name_not_shipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(GsmlpError, match="'detr-small' is not shipped in this installation"):
        load_detector("detr-small")


def test_builtin_name_resolves_to_zoo_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    save_hf_dir(make_tiny_model("deformable-detr"), tmp_path / "deformable-detr-small")
    detector = load_detector("deformable-detr-small")
    assert (detector.family, detector.source) == ("deformable-detr", "deformable-detr-small")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(GsmlpError, match=r"nowhere: no such file or folder.*\.pth.*detr-small"):
        load_detector(tmp_path / "nowhere")


def test_unknown_format_lists_accepted(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(GsmlpError, match=r"unknown format '\.onnx'.*Hugging Face.*\.pth.*gsmlp gated"):
        load_detector(tmp_path / "model.onnx")
    with pytest.raises(GsmlpError, match="folder without config.json"):
        load_detector(tmp_path)


def test_folder_without_weights(detr_dir: Path) -> None:
    (detr_dir / "model.safetensors").unlink()
    with pytest.raises(GsmlpError, match="no weights: expected model.safetensors or pytorch_model.bin"):
        load_detector(detr_dir)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_safetensors(tmp_path: Path) -> None:
    folder = save_hf_dir(make_tiny_model("detr"), tmp_path / "tiny")
    _truncate(folder / "model.safetensors")
    with pytest.raises(
        GsmlpError, match=r"model\.safetensors is corrupt \(truncated, or not a safetensors file\)"
    ):
        load_detector(folder)


def test_truncated_bin(tmp_path: Path) -> None:
    folder = save_hf_dir(make_tiny_model("detr"), tmp_path / "tiny")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    _truncate(folder / "pytorch_model.bin")
    with pytest.raises(
        GsmlpError, match=r"pytorch_model\.bin is corrupt \(truncated, or not a PyTorch checkpoint\)"
    ):
        load_detector(folder)


def test_corrupt_config(detr_dir: Path) -> None:
    (detr_dir / "config.json").write_text('{"model_type": "detr", "d_model": ')
    with pytest.raises(GsmlpError, match=r"config\.json is corrupt \(truncated, or not valid JSON\)"):
        load_detector(detr_dir)


def test_config_of_another_model_type(detr_dir: Path) -> None:
    config = json.loads((detr_dir / "config.json").read_text())
    (detr_dir / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(GsmlpError, match="model_type is 'bert'; gsmlp loads 'detr', 'deformable_detr'"):
        load_detector(detr_dir)


def _edit_weights(folder: Path, edit) -> None:
    state_dict = load_file(folder / "model.safetensors")
    edit(state_dict)
    save_file(state_dict, folder / "model.safetensors")


def test_missing_keys_are_named(detr_dir: Path) -> None:
    _edit_weights(detr_dir, lambda sd: sd.pop("class_labels_classifier.weight"))
    with pytest.raises(GsmlpError, match=r"1 missing keys: class_labels_classifier\.weight"):
        load_detector(detr_dir)


def test_unexpected_keys_are_named(detr_dir: Path) -> None:
    _edit_weights(detr_dir, lambda sd: sd.update({"extra.head.weight": torch.zeros(3)}))
    with pytest.raises(GsmlpError, match=r"1 unexpected keys: extra\.head\.weight"):
        load_detector(detr_dir)


def test_shape_mismatch_is_named(detr_dir: Path) -> None:
    def widen(sd: dict) -> None:
        sd["class_labels_classifier.weight"] = torch.zeros(9, sd["class_labels_classifier.weight"].shape[1])

    _edit_weights(detr_dir, widen)
    with pytest.raises(GsmlpError, match=r"shape mismatches: class_labels_classifier\.weight \(9, 32\) vs"):
        load_detector(detr_dir)


def test_non_relu_activation_is_refused(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    (tiny_dir / "config.json").write_text(json.dumps({**config, "activation_function": "gelu"}))
    with pytest.raises(GsmlpError, match="activation is 'gelu'.*ReLU"):
        load_detector(tiny_dir)


def test_timm_backbone_config_is_refused(detr_dir: Path) -> None:
    config = json.loads((detr_dir / "config.json").read_text())
    (detr_dir / "config.json").write_text(json.dumps({**config, "use_timm_backbone": True}))
    with pytest.raises(GsmlpError, match="timm backbone"):
        load_detector(detr_dir)


def _gsmlp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gsmlp", *args], capture_output=True, text=True, timeout=300)


def test_info_describes_a_folder(tiny_dir: Path, family: str) -> None:
    result = _gsmlp("info", "--model", str(tiny_dir))
    assert result.returncode == 0, result.stderr
    assert f"family:        {family}" in result.stdout
    hidden = "256" if family == "detr" else "128"
    for layer in ("encoder.0", "encoder.1", "decoder.0", "decoder.1"):
        row = next(line.split() for line in result.stdout.splitlines() if line.startswith(layer))
        assert row == [layer, "32", hidden, hidden, str(DEFAULT_BLOCK_SIZE), "-", "-", "dense"]
    parameters = sum(p.numel() for p in make_tiny_model(family).parameters())
    assert f"parameters:    {parameters:,}" in result.stdout


def test_info_on_a_corrupt_folder(detr_dir: Path) -> None:
    _truncate(detr_dir / "model.safetensors")
    result = _gsmlp("info", "--model", str(detr_dir))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "is corrupt (truncated, or not a safetensors file)" in result.stderr
    assert "Traceback" not in result.stderr


FULL_SIZE = {
    "detr": (DetrForObjectDetection, detr_r50_config),
    "deformable-detr": (DeformableDetrForObjectDetection, deformable_detr_r50_config),
}


def test_full_size_r50_folders_round_trip(tmp_path: Path, family: str) -> None:
    model_class, make_config = FULL_SIZE[family]
    torch.manual_seed(0)
    original = model_class(make_config()).eval()
    folder = save_hf_dir(original, tmp_path / family)
    detector = load_detector(folder)
    # transformers' own loader is the reference: gsmlp's model must compute exactly what it loads.
    reference = model_class.from_pretrained(folder).eval()
    shutil.rmtree(folder)
    assert detector.family == family
    assert len(list(gated_layers(detector.model))) == 12
    pixels = _pixels(64, 96)[:1]
    _same_outputs(reference, detector.model, pixels)
    # A freshly built transformers Deformable DETR and the same weights after from_pretrained differ by
    # up to ~1e-6 in its decoder (measured without gsmlp involved), so the original is compared closely.
    with torch.no_grad():
        a, b = original(pixel_values=pixels), detector.model(pixel_values=pixels)
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.pred_boxes, a.pred_boxes, rtol=0, atol=1e-5)
