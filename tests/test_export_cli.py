"""`gsmlp export` from a user's point of view: a gated checkpoint folder in, a runnable ONNX file out."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmlp.cli import main
from gsmlp.model.checkpoint import save_gated
from gsmlp.model.detector import LoadedDetector, ready_for_gsmlp
from gsmlp.model.loaders import load_detector
from gsmlp.model.processing import PreprocessConfig
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
from gsmlp.validation.parity import output_differences
from tests.conftest import make_tiny_model
from tests.test_export import attach_random_gates, random_inputs


@pytest.fixture
def gated_checkpoint(tmp_path: Path, family: str) -> Path:
    model = ready_for_gsmlp(make_tiny_model(family), block_size=16)
    loaded = LoadedDetector(model, family, PreprocessConfig(), source="tiny test model")
    attach_random_gates(loaded.model)
    save_gated(tmp_path / "gated", loaded, calibration={"method": "random gates for a test"})
    return tmp_path / "gated"


def test_export_command_writes_a_file_that_matches_pytorch_on_a_padded_batch(
    gated_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "gated.onnx"
    args = [
        "export",
        "--model",
        str(gated_checkpoint),
        "--out",
        str(out),
        "--height",
        "128",
        "--width",
        "128",
    ]
    assert main([*args, "--batch", "2"]) == 0
    assert "4 GatedSparseMLP nodes" in capsys.readouterr().out
    pixel_values, pixel_mask = random_inputs(2, 128, 128)
    pixel_mask[1, :, 64:] = 0  # a narrower second image: padding must not change its outputs
    pixel_values[1, :, :, 64:] = 0
    reference = PyTorchBackend(load_detector(gated_checkpoint).model).run(pixel_values, pixel_mask)
    diffs = output_differences(reference, OnnxRuntimeBackend(out).run(pixel_values, pixel_mask))
    assert max(d["max_abs_diff"] for d in diffs.values()) <= 1e-4, diffs


def test_export_command_bad_input_exits_1_with_message(tmp_path: Path, capsys) -> None:
    model = ready_for_gsmlp(make_tiny_model("detr"), block_size=16)
    hf = tmp_path / "plain"
    save_gated(hf, LoadedDetector(model, "detr", PreprocessConfig(), source="tiny"), calibration={})
    assert main(["export", "--model", str(hf), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "error: the model has no gated or SIBS-pruned FFN" in capsys.readouterr().err
    assert main(["export", "--model", str(hf), "--out", str(tmp_path / "x.onnx"), "--height", "0"]) == 1
    assert "--height must be between 1 and 8192, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["export", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "missing" in capsys.readouterr().err
