"""`gsmlp calibrate` end to end on a tiny detector and a few generated images, and its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsmlp.cli import main
from gsmlp.data import shapes
from gsmlp.model.loaders import load_detector
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.wrap import gated_layers
from tests.conftest import make_tiny_model

SMALL_IMAGES = PreprocessConfig(shortest_edge=96, longest_edge=160)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("calibrate")
    model_dir = root / "tiny-detr"
    make_tiny_model("detr").save_pretrained(model_dir, safe_serialization=True)
    SMALL_IMAGES.save(model_dir / "preprocessor_config.json")
    shapes.write_split(shapes.SplitSpec("tiny-shapes", 12, seed=5), root / "data", show_progress=False)
    return {"root": root, "model": model_dir, "data": root / "data"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _calibrate(setup: dict[str, Path], out: Path, *extra: str) -> int:
    data = setup["data"]
    return main(
        [
            "calibrate",
            "--model", str(setup["model"]),
            "--data", str(data / "annotations.json"), "--images", str(data / "images"),
            "--block-size", "16", "--rank", "4", "--gate-steps", "50", "--reservoir", "2000",
            "--out", str(out),
            *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def calibrated(tiny_setup: dict[str, Path]) -> Path:
    out = tiny_setup["root"] / "gated"
    data = tiny_setup["data"]
    eval_args = ["--eval-data", str(data / "annotations.json"), "--eval-images", str(data / "images")]
    status = _calibrate(
        tiny_setup, out, "--method", "sibs+mgs", "--target-sparsity", "0.6", *eval_args, "--sweep", "0.3,0.6"
    )
    assert status == 0
    return out


def test_calibrate_writes_checkpoint_report_and_plots(calibrated: Path) -> None:
    for name in ("calibration.json", "calibration.md", "calibration.png", "analysis.json", "analysis.png",
                 "statistics.safetensors", "gsmlp.json", "model.safetensors", "config.json"):  # fmt: skip
        assert (calibrated / name).is_file(), name
    report = json.loads((calibrated / "calibration.json").read_text())
    assert set(report["ffn_sparsity"]) >= {"encoder", "decoder", "per_layer"}
    assert 0 < report["gate_cost_ratio"] < 0.1
    assert report["ffn_mac_ratio"] == pytest.approx(
        report["gate_cost_ratio"] + 1 - _token_weighted_sparsity(report), abs=1e-9
    )
    assert 0 <= report["AP_dense"] <= 100 and 0 <= report["AP_gated"] <= 100
    assert [point["value"] for point in report["sweep"]] == [0.3, 0.6]
    # Thresholds are set on held-out images; measured on the evaluation images they land near the target.
    assert report["ffn_sparsity"]["encoder"] == pytest.approx(0.6, abs=0.15)


def test_the_sweep_cache_changes_no_sweep_point(tiny_setup: dict[str, Path], calibrated: Path) -> None:
    """The same calibration with the sweep's feature cache off: every point's AP and sparsity identical."""
    out = tiny_setup["root"] / "gated-no-cache"
    data = tiny_setup["data"]
    eval_args = ["--eval-data", str(data / "annotations.json"), "--eval-images", str(data / "images")]
    assert _calibrate(tiny_setup, out, "--method", "sibs+mgs", "--target-sparsity", "0.6", *eval_args,
                      "--sweep", "0.3,0.6", "--sweep-cache-mb", "0") == 0  # fmt: skip
    cached = json.loads((calibrated / "calibration.json").read_text())
    uncached = json.loads((out / "calibration.json").read_text())
    assert cached["sweep"] == uncached["sweep"]
    # Four evaluations on the same batches (dense, gated, two points): the first computes, the rest hit.
    batches = cached["sweep_cache"]["misses"]
    assert batches > 0 and cached["sweep_cache"]["hits"] == 3 * batches
    assert uncached["sweep_cache"] is None


def _token_weighted_sparsity(report: dict) -> float:
    per_layer = report["ffn_sparsity"]["per_layer"]
    # All tiny FFNs have the same width, so the MAC weights are token counts.
    total = sum(layer["tokens"] for layer in per_layer.values())
    return sum(layer["tokens"] * layer["ffn_sparsity"] for layer in per_layer.values()) / total


def test_gated_checkpoint_round_trip_computes_the_same_detector(calibrated: Path) -> None:
    reloaded = load_detector(str(calibrated))
    meta = json.loads((calibrated / "gsmlp.json").read_text())
    assert meta["calibration"]["method"] == "sibs+mgs"
    pixels = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    again = load_detector(str(calibrated))
    with torch.no_grad():
        first = reloaded.model(pixel_values=pixels)
        second = again.model(pixel_values=pixels)
    assert torch.equal(first.logits, second.logits)
    for name, layer in gated_layers(reloaded.model):
        # --gate-layers defaults to the encoder: the decoder's FFNs keep SIBS alone.
        gated = name.startswith("encoder.")
        assert layer.mode == ("gated" if gated else "static") and (layer.gate is not None) == gated
        assert layer.dense_hidden == 256


def test_checkpoint_with_mismatched_shapes_is_refused(calibrated: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in calibrated.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    meta = json.loads((broken / "gsmlp.json").read_text())
    meta["layers"]["encoder.0"]["hidden"] -= 1
    (broken / "gsmlp.json").write_text(json.dumps(meta))
    status = main(["calibrate", "--model", str(broken), "--data", "shapes-val", "--out", str(tmp_path / "x")])
    assert status == 1
    assert "model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_checkpoint_with_another_version_is_refused(calibrated: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "v2"
    broken.mkdir()
    for item in calibrated.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    meta = json.loads((broken / "gsmlp.json").read_text())
    meta["version"] = 2
    (broken / "gsmlp.json").write_text(json.dumps(meta))
    assert (
        main(["calibrate", "--model", str(broken), "--data", "shapes-val", "--out", str(tmp_path / "x")]) == 1
    )
    assert "version 2" in capsys.readouterr().err


def test_analyze_only_writes_the_inherent_sparsity_baseline(tiny_setup: dict[str, Path]) -> None:
    out = tiny_setup["root"] / "analysis"
    assert _calibrate(tiny_setup, out, "--analyze-only") == 0
    analysis = json.loads((out / "analysis.json").read_text())
    assert (out / "analysis.png").is_file() and not (out / "gsmlp.json").exists()
    layer = analysis["per_layer"]["encoder.0"]
    assert sum(layer["frequency_histogram"]["neurons"]) == layer["hidden"] == 256
    assert 0 < layer["zero_fraction"] < 1


def test_bad_options_are_explained(tiny_setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert _calibrate(tiny_setup, tmp_path / "x", "--epsilon", "1.5") == 1
    assert "--epsilon must be in [0.0, 1.0), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sibs_alone_narrows_the_ffns_and_sweeps_epsilon(tiny_setup: dict[str, Path]) -> None:
    out = tiny_setup["root"] / "sibs"
    data = tiny_setup["data"]
    eval_args = ["--eval-data", str(data / "annotations.json"), "--eval-images", str(data / "images")]
    assert (
        _calibrate(tiny_setup, out, "--method", "sibs", "--epsilon", "0.3", *eval_args, "--sweep", "0.3,0")
        == 0
    )
    report = json.loads((out / "calibration.json").read_text())
    assert report["gate_cost_ratio"] == 0.0
    # The last point prunes nothing; the checkpoint written after it must still hold epsilon 0.3's FFNs.
    pruned, no_pruning = report["sweep"]
    assert pruned["encoder"] > no_pruning["encoder"]
    assert report["ffn_sparsity"]["encoder"] == pytest.approx(pruned["encoder"])
    reloaded = load_detector(str(out))
    for name, layer in gated_layers(reloaded.model):
        assert layer.mode == "static" and layer.gate is None
        assert layer.hidden == report["layers"][name]["hidden"] < layer.dense_hidden
