"""Scale-out under torchrun: 2 gloo processes on the CPU give the results of one process, and a failure on
one rank stops every rank. The runs are real torchrun launches (`python -m torch.distributed.run`) of the
real CLI on tiny models, each under a timeout so that a hang fails the test instead of stalling CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gsmlp.distributed import Group, shard_bounds
from gsmlp.model.configs import tiny_config
from tests.conftest import FAMILIES

LAUNCH_TIMEOUT_S = 240


def test_shards_cover_every_item_once_without_padding() -> None:
    for count in (0, 1, 5, 40, 41):
        for world_size in (1, 2, 3, 8):
            bounds = [shard_bounds(count, rank, world_size) for rank in range(world_size)]
            covered = [i for start, end in bounds for i in range(start, end)]
            assert covered == list(range(count))  # contiguous, in order, each once
            sizes = [end - start for start, end in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_one_process_group_is_the_identity() -> None:
    group = Group()
    assert not group.distributed and group.is_main
    assert group.shard([1, 2, 3]) == [1, 2, 3] and group.gather("x") == ["x"]
    tensor = torch.tensor([1.5])
    assert group.sum(tensor) is tensor
    assert group.report([3]) == {"world_size": 1, "backend": None, "images_per_rank": [3]}
    with pytest.raises(ValueError), group.together("working"):
        raise ValueError("passes through unchanged")


def _data(split: Path) -> list[str]:
    return ["--data", str(split / "annotations.json"), "--images", str(split / "images")]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", GSMLP_DIST_TIMEOUT="60")
    return env


def run_gsmlp(args: list[str], nproc: int | None) -> subprocess.CompletedProcess:
    """`python -m gsmlp ARGS` as one plain process (nproc None) or under torchrun with nproc gloo ranks."""
    launcher = (
        [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    )
    command = [sys.executable, *launcher, "-m", "gsmlp", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=_environment(), check=False
    )


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def test_eval_with_two_ranks_gives_the_metrics_of_one(
    small_detr: Path, shapes_val_40: Path, tmp_path
) -> None:
    args = ["eval", "--model", str(small_detr), *_data(shapes_val_40), "--batch-size", "4", "--threads", "1"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _ok(run_gsmlp([*args, "--report", str(one)], None))
    result = run_gsmlp([*args, "--report", str(two)], 2)
    _ok(result)
    assert result.stdout.count("COCO") <= 1 and "AP50" in result.stdout  # rank 0 alone prints
    single, double = json.loads(one.read_text()), json.loads(two.read_text())
    assert single["distributed"] == {"world_size": 1, "backend": None, "images_per_rank": [40]}
    assert double["distributed"]["world_size"] == 2 and double["distributed"]["backend"] == "gloo"
    assert double["distributed"]["images_per_rank"] == [20, 20]
    assert double["images"] == single["images"] == 40
    assert double["metrics"] == single["metrics"]  # exactly: each image scored once, COCOeval once
    assert any(value > 0 for value in single["metrics"].values()), single["metrics"]
    for part in ("encoder_activation_sparsity", "decoder_activation_sparsity"):
        assert double["ffn_sparsity"][part] == single["ffn_sparsity"][part]


RANK_FAILS = """
import sys
from gsmlp.cli import main
from gsmlp.distributed import process_group
from gsmlp.errors import GsmlpError
from gsmlp.io import write_json_atomic

def work(args):
    with process_group() as group:
        with group.together("reading its shard of the images"):
            if group.rank == 1:
                with open(sys.argv[2], "rb") as image:
                    image.read()
        together = group.gather(group.rank)
        with group.together("writing the report"):
            if group.is_main:
                write_json_atomic(sys.argv[1], {"ranks": together})
    return 0

class Args:
    command = "work"
    run = staticmethod(work)

import gsmlp.cli as cli
cli.build_parser = lambda **_: type("P", (), {"parse_args": staticmethod(lambda argv: Args)})()
sys.exit(main([]))
"""


def _launch_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
    ]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=_environment()
    )


def test_a_failure_on_one_rank_stops_every_rank_before_anything_is_written(tmp_path: Path) -> None:
    """Rank 1 cannot read its image while rank 0 has already moved on to gathering: both stop, non-zero,
    rank 0 prints one `error:` line naming rank 1 and the file, and the report is never written."""
    script = tmp_path / "rank_fails.py"
    script.write_text(RANK_FAILS)
    report, image = tmp_path / "report.json", tmp_path / "unreadable.jpg"
    image.mkdir()  # reading a folder fails: IsADirectoryError, an OSError with the path
    started = time.monotonic()
    result = _launch_script(script, str(report), str(image))
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "rank 1 of 2 failed while reading its shard of the images" in errors[0]
    assert str(image) in errors[0]
    assert not report.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "rank_fails.py",
        "unreadable.jpg",
    ]
    image.rmdir()
    image.write_bytes(b"readable")
    _ok(_launch_script(script, str(report), str(image)))  # the same script succeeds when rank 1 can read
    assert json.loads(report.read_text()) == {"ranks": [0, 1]}


@pytest.fixture(scope="module")
def tiny_detr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dist") / "tiny-detr"
    torch.manual_seed(0)
    FAMILIES["detr"](tiny_config("detr", num_labels=11)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 64, "longest_edge": 96}})
    )
    return folder


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-6, atol=0.0))


def test_calibrate_statistics_and_sibs_masks_with_two_ranks_are_those_of_one(
    tiny_detr: Path, shapes_val_40: Path, tmp_path: Path
) -> None:
    from gsmlp.calibration.statistics import load_statistics

    args = ["calibrate", "--model", str(tiny_detr), *_data(shapes_val_40), "--limit", "9", "--method", "sibs"]
    args += ["--epsilon", "0.05", "--reservoir", "500"]
    one, two = tmp_path / "one", tmp_path / "two"
    _ok(run_gsmlp([*args, "--out", str(one)], None))
    _ok(run_gsmlp([*args, "--out", str(two)], 2))
    single, double = load_statistics(one), load_statistics(two)
    assert sorted(single) == sorted(double)
    for name in single:
        a, b = single[name], double[name]
        assert a.tokens == b.tokens
        for field in ("active_count", "value_sum", "coactive", "value_max", "reservoir_x"):
            assert _close(getattr(a, field), getattr(b, field)), (name, field)
        assert torch.equal(a.reservoir_image, b.reservoir_image)
    report_one = json.loads((one / "calibration.json").read_text())
    report_two = json.loads((two / "calibration.json").read_text())
    assert report_two["distributed"] == {"world_size": 2, "backend": "gloo", "images_per_rank": [5, 4]}
    assert report_one["distributed"]["world_size"] == 1
    kept = {name: layer["hidden"] for name, layer in report_one["layers"].items()}
    assert kept == {name: layer["hidden"] for name, layer in report_two["layers"].items()}
    from safetensors.torch import load_file

    weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert {k: v.shape for k, v in weights_one.items()} == {k: v.shape for k, v in weights_two.items()}
    for key, value in weights_one.items():
        assert torch.equal(value, weights_two[key]), key  # the same neurons kept, in the same order


def test_mgs_with_two_ranks_and_the_same_global_batch_matches_one(
    small_detr: Path, shapes_val_40: Path, tmp_path: Path
) -> None:
    data = ["--data", str(shapes_val_40 / "annotations.json"), "--images", str(shapes_val_40 / "images")]
    evaluation = ["--eval-data", data[1], "--eval-images", data[3], "--eval-limit", "16", "--sweep", ""]
    args = [
        "calibrate",
        "--model",
        str(small_detr),
        *data,
        "--limit",
        "8",
        "--method",
        "sibs+mgs",
        *evaluation,
    ]
    args += ["--gate-steps", "60", "--reservoir", "2000", "--threshold-passes", "1"]
    one, two = tmp_path / "one", tmp_path / "two"
    _ok(run_gsmlp([*args, "--out", str(one)], None))
    _ok(run_gsmlp([*args, "--out", str(two)], 2))
    single = json.loads((one / "calibration.json").read_text())
    double = json.loads((two / "calibration.json").read_text())
    assert abs(single["ffn_sparsity"]["encoder"] - double["ffn_sparsity"]["encoder"]) <= 0.01
    assert abs(single["AP_gated"] - double["AP_gated"]) <= 0.3
    assert single["AP_dense"] == double["AP_dense"]  # dense evaluation: exactly the same images, once each
    assert double["distributed"]["images_per_rank"] == [4, 4]


def _untimed(sparsity: dict | None) -> dict | None:
    """Sparsity figures without the wall times, which differ between any two runs."""
    if sparsity is None:
        return None
    layers = {
        name: {k: v for k, v in layer.items() if k != "seconds"}
        for name, layer in sparsity["per_layer"].items()
    }
    return {**sparsity, "per_layer": layers}


def test_validate_with_two_ranks_reports_the_parity_of_one(coco_subset: Path, tmp_path: Path) -> None:
    from tests.test_validate import SHAPE_ARGS, gated_checkpoint

    checkpoint = gated_checkpoint(tmp_path, "detr")
    onnx_path = tmp_path / "gated.onnx"
    _ok(run_gsmlp(["export", "--model", str(checkpoint), "--out", str(onnx_path), *SHAPE_ARGS["detr"]], None))
    data = ["--data", str(coco_subset / "annotations" / "instances_val2017.json")]
    data += ["--images", str(coco_subset / "val2017"), "--limit", "6", "--batch-size", "2"]
    args = ["validate", "--model", str(checkpoint), "--onnx", str(onnx_path), *data, "--fp64-images", "4"]
    one, two = tmp_path / "one" / "report.json", tmp_path / "two" / "report.json"
    one.parent.mkdir(), two.parent.mkdir()
    _ok(run_gsmlp([*args, "--report", str(one)], None))
    _ok(run_gsmlp([*args, "--report", str(two)], 2))
    single, double = json.loads(one.read_text()), json.loads(two.read_text())
    assert double["distributed"] == {"world_size": 2, "backend": "gloo", "images_per_rank": [4, 2]}
    assert single["distributed"] == {"world_size": 1, "backend": None, "images_per_rank": [6]}
    assert double["images"] == single["images"] == 6 and double["pass"] == single["pass"]
    assert double["parity"] == single["parity"]  # worst differences, flips summed, agreement, delta AP
    for name, entry in single["backends"].items():
        other = double["backends"][name]
        assert other["metrics"] == entry["metrics"]
        assert _untimed(other["ffn_sparsity"]) == _untimed(entry["ffn_sparsity"])
        assert len(other["latency_ms_per_rank"]) == 2
    assert double["parity"]["onnxruntime"]["gate_decisions"]["decisions"] > 0
