"""`gsmlp demo`: the whole pipeline at tiny scale, the summary table, and an interrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsmlp.cli import main
from gsmlp.runtime.ort_session import op_library
from gsmlp.runtime.trt_common import tensorrt_missing
from gsmlp.validation import demo as demo_pipeline
from gsmlp.validation.demo import assemble_report
from gsmlp.validation.session import tensorrt_backend
from gsmlp.validation.summary import format_table

TINY = ["--calib-images", "4", "--val-images", "3", "--gate-steps", "10"]


def _report(parity_pass: bool, sparsity: float) -> dict:
    ok = {"status": "ok", "reason": "", "metrics": {"AP": 1.5}, "latency_ms": {"median": 2.0, "p90": 3.0}}
    return {
        "reference": "pytorch",
        "backends": {
            "pytorch": {
                **ok,
                "ffn_sparsity": {"encoder": sparsity, "decoder": sparsity / 2},
                "ffn_macs": {"ffn_mac_ratio": 1 - sparsity},
            },
            "onnxruntime": {**ok, "ffn_sparsity": None, "ffn_macs": None},
            "tensorrt": {"status": "skipped", "reason": "no GPU", "metrics": None, "latency_ms": None},
        },
        "parity": {"onnxruntime": {"pass": parity_pass, "delta_AP": 0.0, "max_abs_diff": 1e-6}},
        "pass": parity_pass,
    }


def test_table_rows_and_report_assembly() -> None:
    modes = {"dense": _report(True, 0.0), "gated": _report(False, 0.9)}
    report = assemble_report(modes, {"calibrate": {"status": "ok"}}, "detr-small")
    assert report["pass"] is False  # one mode failing parity fails the demo
    assert report["backends"] == modes["gated"]["backends"] and report["modes"] == modes
    rows = {(row["backend"], row["mode"]): row for row in report["table"]}
    assert len(rows) == 6
    assert (
        rows["pytorch", "gated"]["ffn_sparsity"] == 0.9 and rows["pytorch", "gated"]["parity"] == "reference"
    )
    assert (
        rows["onnxruntime", "gated"]["parity"] == "FAIL" and rows["onnxruntime", "dense"]["parity"] == "pass"
    )
    assert rows["tensorrt", "gated"]["AP"] is None and rows["tensorrt", "gated"]["parity"] == "skipped"
    text = format_table(report["table"])
    assert "tensorrt skipped: no GPU" in text and "FAIL" in text
    assert len(text.splitlines()) == 2 + 6 + 1


def test_tensorrt_backend_is_skipped_with_its_reason_where_tensorrt_is_missing() -> None:
    missing = tensorrt_missing()
    if missing is None:
        pytest.skip("TensorRT and a GPU are present here")
    reason = tensorrt_backend("any.engine", None)
    assert isinstance(reason, str) and "tensorrt" in reason.lower()


def test_demo_at_tiny_scale(tmp_path: Path, capsys, monkeypatch) -> None:
    from gsmlp.model import loaders

    loads: list[str] = []
    real_load = loaders._load
    monkeypatch.setattr(
        loaders, "_load", lambda spec, block_size: loads.append(str(spec)) or real_load(spec, block_size)
    )
    out = tmp_path / "demo"
    status = main(["demo", "--out", str(out), *TINY])
    assert len(loads) == len(set(loads)) == 2, loads  # the base model, then its checkpoint: once each
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert status == (0 if report["pass"] else 1)
    assert {"backends", "parity", "pass", "modes", "table", "steps"} <= set(report)
    assert set(report["modes"]) == {"dense", "gated"}
    assert (out / "dense.onnx").is_file() and (out / "gated.onnx").is_file() and (out / "checkpoint").is_dir()
    assert str(tmp_path / ".demo") not in json.dumps(report)  # paths name the published folder
    gated = report["modes"]["gated"]["backends"]["pytorch"]
    assert gated["status"] == "ok" and gated["ffn_sparsity"]["encoder"] > 0.5  # target 0.9
    assert report["modes"]["gated"]["parity"]["onnxruntime"]["pass"] is True
    ran = "gsmlp op library (CPU)" if op_library() is not None else "function body"
    assert report["modes"]["gated"]["backends"]["onnxruntime"]["implementation"] == ran
    rows = {(row["backend"], row["mode"]): row for row in report["table"]}
    assert rows["onnxruntime", "gated"]["implementation"] == ran
    assert rows["onnxruntime", "dense"]["implementation"] == "none (dense file)"
    assert "GatedSparseMLP ran on" in printed and ran in printed
    if tensorrt_missing():
        assert report["backends"]["tensorrt"]["status"] == "skipped"
        assert report["steps"]["build_gated"]["status"] == "skipped"
    for name in ("report.md", "report_ap.png", "report_sparsity.png"):
        assert (out / name).stat().st_size > 0
    markdown = (out / "report.md").read_text()
    assert "# dense: validation" in markdown and "# gated: validation" in markdown and "| AP |" in markdown
    assert "onnxruntime  gated" in printed and "enc sparsity" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folder left behind
    _check_picture(out, report)


def _check_picture(out: Path, report: dict) -> None:
    """report_detections.png: the shapes-val image, dense and gated side by side; report.md shows it."""
    from PIL import Image

    from gsmlp.data.shapes import ensure_split

    picture = report["picture"]
    assert picture["file"] == "report_detections.png" and set(picture["detections"]) == {"dense", "gated"}
    assert "![dense and gated detections](report_detections.png)" in (out / "report.md").read_text()
    with Image.open(ensure_split("shapes-val") / "images" / "000001.jpg") as original:
        width, height = original.size
    with Image.open(out / "report_detections.png") as sheet:
        assert sheet.width > 2 * width and sheet.height > height


def test_interrupted_demo_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_pipeline, "_validate", interrupt)
    assert main(["demo", "--out", str(tmp_path / "demo"), *TINY]) == 130
    assert list(tmp_path.iterdir()) == []


def test_demo_names_a_bad_count() -> None:
    assert main(["demo", "--out", "unused", "--val-images", "0"]) == 1
