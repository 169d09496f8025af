"""`gsmlp eval` end to end: a tiny random detector of each family on a few generated images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsmlp.cli import main
from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.model.configs import tiny_config
from tests.conftest import FAMILIES


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval") / "tiny"
    write_split(SplitSpec("tiny", 5, seed=9), folder, show_progress=False)
    return folder


def _save_tiny_model(family: str, folder: Path) -> Path:
    torch.manual_seed(0)
    FAMILIES[family](tiny_config(family, num_labels=11)).save_pretrained(folder)
    preprocessor = {"size": {"shortest_edge": 96, "longest_edge": 128}}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def _eval_args(model: Path, split: Path, *extra: str) -> list[str]:
    data = ["--data", str(split / "annotations.json"), "--images", str(split / "images")]
    return ["eval", "--model", str(model), *data, "--batch-size", "2", *extra]


def test_eval_writes_the_report(family: str, tiny_split: Path, tmp_path: Path, capsys) -> None:
    model = _save_tiny_model(family, tmp_path / "model")
    report_path = tmp_path / "report.json"
    assert main(_eval_args(model, tiny_split, "--limit", "3", "--report", str(report_path))) == 0
    report = json.loads(report_path.read_text())
    assert report["images"] == 3 and report["mode"] == "dense" and report["family"] == family
    assert set(report["metrics"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert all(0.0 <= v <= 100.0 for v in report["metrics"].values())
    sparsity = report["ffn_sparsity"]
    assert sparsity["encoder"] == 0.0 and sparsity["decoder"] == 0.0  # dense computes every neuron
    assert 0.0 < sparsity["encoder_activation_sparsity"] < 1.0
    assert sorted(sparsity["per_layer"]) == ["decoder.0", "decoder.1", "encoder.0", "encoder.1"]
    timing = report["timing"]
    assert timing["model_s"] > 0
    # The FFNs run inside the model, so their measured time is a real, partial share of it.
    assert 0.0 < timing["ffn_ms_per_image"] < timing["model_ms_per_image"]
    assert 0.0 < timing["ffn_share"] < 1.0
    layer_seconds = sum(layer["seconds"] for layer in sparsity["per_layer"].values())
    assert abs(layer_seconds * 1000 / 3 - timing["ffn_ms_per_image"]) < 0.01
    out = capsys.readouterr().out
    assert "AP50" in out and "of which FFNs" in out


def test_gated_mode_needs_a_gated_checkpoint(tiny_split: Path, tmp_path: Path, capsys) -> None:
    model = _save_tiny_model("detr", tmp_path / "model")
    assert main(_eval_args(model, tiny_split, "--mode", "gated")) == 1
    assert "--mode gated needs a gated checkpoint" in capsys.readouterr().err


def test_bad_batch_size_is_explained(tiny_split: Path, tmp_path: Path, capsys) -> None:
    assert main(_eval_args(tmp_path, tiny_split, "--batch-size", "0")) == 1
    assert "--batch-size must be between 1 and 256, got 0" in capsys.readouterr().err


def test_missing_data_file_is_explained(tmp_path: Path, capsys) -> None:
    assert (
        main(["eval", "--model", str(tmp_path), "--data", str(tmp_path / "none.json"), "--images", "x"]) == 1
    )
    assert "none.json: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_random_detr_r50_runs_on_real_coco(coco_subset: Path, tmp_path: Path) -> None:
    """Real JPEGs, 80 non-contiguous category ids, crowd boxes, an image without objects: it must run."""
    from gsmlp.model.configs import detr_r50_config

    torch.manual_seed(0)
    FAMILIES["detr"](detr_r50_config()).save_pretrained(tmp_path / "r50")
    report_path = tmp_path / "report.json"
    args = [
        "eval",
        "--model",
        str(tmp_path / "r50"),
        "--data",
        str(coco_subset / "annotations/instances_val2017.json"),
    ]
    args += ["--images", str(coco_subset / "val2017"), "--limit", "4", "--report", str(report_path)]
    assert main(args) == 0
    report = json.loads(report_path.read_text())
    assert report["images"] == 4 and report["metrics"]["AP"] < 1.0
