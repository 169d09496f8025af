"""`gsmlp bench model`: the whole detector, dense and gated, per backend, on real COCO images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsmlp.cli import main
from gsmlp.runtime.ort_session import op_library
from tests.test_validate import gated_checkpoint


def _coco(coco_subset: Path) -> list[str]:
    return ["--data", str(coco_subset / "annotations" / "instances_val2017.json"),
            "--images", str(coco_subset / "val2017")]  # fmt: skip


def _bench(checkpoint: Path, coco_subset: Path, limit: int) -> list[str]:
    """`gsmlp bench model` on the checkpoint and the first `limit` COCO images, the first one untimed."""
    return ["bench", "model", "--model", str(checkpoint), *_coco(coco_subset), "--limit", str(limit),
            "--warmup", "1"]  # fmt: skip


def test_bench_model_times_dense_and_gated_per_backend(coco_subset: Path, tmp_path: Path, capsys) -> None:
    checkpoint = gated_checkpoint(tmp_path, "detr")
    report_path = tmp_path / "out" / "bench.json"
    argv = _bench(checkpoint, coco_subset, limit=3)
    argv += ["--threads", "1", "--ort-threading", "both", "--report", str(report_path)]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["images_timed"] == 2 and report["threads"] == 1 and report["size"] == [192, 192]
    built = op_library() is not None
    for name in ("pytorch", "onnxruntime"):
        entry = report["backends"][name]
        assert entry["dense_ms"] > 0 and entry["gated_ms"] > 0
        assert entry["speedup"] == pytest.approx(entry["dense_ms"] / entry["gated_ms"], rel=1e-2)
    ort = report["backends"]["onnxruntime"]
    assert ort["implementation"] == ("gsmlp op library (CPU)" if built else "function body")
    assert ("gated_openmp_ms" in ort) == built
    assert report["backends"]["pytorch"]["implementation"] == "gsmlp CPU kernel"
    printed = capsys.readouterr().out
    assert "median ms per image" in printed and "onnxruntime" in printed
    assert sorted(p.name for p in report_path.parent.iterdir()) == ["bench.json"]


def test_bench_model_uses_given_files(coco_subset: Path, tmp_path: Path) -> None:
    checkpoint = gated_checkpoint(tmp_path, "detr")
    dense, gated = tmp_path / "dense.onnx", tmp_path / "gated.onnx"
    size = ["--height", "192", "--width", "192"]
    assert main(["export", "--model", str(checkpoint), "--out", str(gated), *size]) == 0
    assert main(["export", "--model", str(checkpoint), "--out", str(dense), "--dense", *size]) == 0
    report_path = tmp_path / "bench.json"
    argv = _bench(checkpoint, coco_subset, limit=2)
    argv += ["--backends", "onnxruntime", "--onnx-dense", str(dense), "--onnx-gated", str(gated)]
    assert main([*argv, "--ort-op", "function", "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert list(report["backends"]) == ["onnxruntime"]
    assert report["backends"]["onnxruntime"]["implementation"] == "function body"
    assert report["onnx"] == {"dense": str(dense), "gated": str(gated)}


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--backends", "tensorrt"], "unknown ['tensorrt']"),
        (["--onnx-dense", "d.onnx"], "--onnx-dense and --onnx-gated go together"),
        (["--limit", "2", "--warmup", "2"], "need limit >= 1 and 0 <= warmup < limit"),
        (["--threads", "0"], "--threads must be between 1 and 1024, got 0"),
    ],
)
def test_bench_model_arguments_are_explained(extra, message, tmp_path: Path, capsys) -> None:
    argv = ["bench", "model", "--model", "detr-small", "--report", str(tmp_path / "r.json"), *extra]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_bench_model_needs_a_gated_checkpoint(tmp_path: Path, capsys) -> None:
    argv = ["bench", "model", "--model", "detr-small", "--limit", "2", "--warmup", "0"]
    assert main([*argv, "--backends", "pytorch", "--report", str(tmp_path / "r.json")]) == 1
    assert "has no gated FFN" in capsys.readouterr().err


def test_bench_model_deformable_times_the_baseline_without_the_sampling_op(
    coco_subset: Path, tmp_path: Path, capsys
) -> None:
    from gsmlp.model.sampling import OP_SAMPLING, TRANSFORMERS_SAMPLING, _torch_op

    if _torch_op()[0] is None:
        pytest.skip(f"the gsmlp torch sampling op cannot run here: {_torch_op()[1]}")
    checkpoint = gated_checkpoint(tmp_path, "deformable-detr")
    report_path = tmp_path / "bench.json"
    argv = _bench(checkpoint, coco_subset, limit=2)
    assert main([*argv, "--threads", "1", "--report", str(report_path)]) == 0
    backends = json.loads(report_path.read_text())["backends"]
    samplings = {
        name: {v: e["sampling"] for v, e in entry["variants"].items()} for name, entry in backends.items()
    }
    assert samplings["pytorch"] == {
        "dense": OP_SAMPLING,
        "gated": OP_SAMPLING,
        "dense_baseline": TRANSFORMERS_SAMPLING,
    }
    assert samplings["onnxruntime"] == {"dense": "op", "gated": "op", "dense_baseline": "inline"}
    for entry in backends.values():
        assert entry["speedup_vs_baseline"] == pytest.approx(
            entry["baseline_ms"] / entry["gated_ms"], rel=1e-2
        )
    assert "(baseline)" in capsys.readouterr().out
