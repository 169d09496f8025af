"""gsmlp reads only what the user pointed at, and exactly that (issue 27, class 1): external data beside
the ONNX file whatever the working folder (also for the bytes validation hands ONNX Runtime), libraries
named by a variable used or refused, links inside --images followed and links out of it not."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from gsmlp.cli import main
from gsmlp.validation.backends import OnnxRuntimeBackend
from tests.workspace import DATA, make_workspace, run_gsmlp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("inputs"))


def _with_external_data(source: Path, folder: Path, fill: float | None = None) -> Path:
    """`source` saved with its weights as external data (`weights.bin` beside it); `fill` overwrites every
    external value (a stranger's file of the same name)."""
    folder.mkdir()
    proto = onnx.load(source)
    onnx.save(proto, folder / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=256)  # fmt: skip
    if fill is not None:
        size = (folder / "weights.bin").stat().st_size
        (folder / "weights.bin").write_bytes(np.full(size // 4, fill, np.float32).tobytes())
    return folder / "m.onnx"


def test_external_data_is_read_beside_the_file_whatever_the_working_folder(
    ws: Path, tmp_path: Path, monkeypatch
) -> None:
    """Validation hands ONNX Runtime an in-memory copy (BlockMask outputs exposed): its weights still come
    from beside the file, never from a file of the same name in the working folder."""
    ours = _with_external_data(ws / "gated.onnx", tmp_path / "ours")
    _with_external_data(ws / "gated.onnx", tmp_path / "stranger", fill=7.0)
    inputs = (np.random.default_rng(0).standard_normal((1, 3, 64, 64), np.float32), np.ones((1, 64, 64)))
    expected = OnnxRuntimeBackend(ws / "gated.onnx", gate_decisions=True).run(*inputs)
    for cwd in (tmp_path / "stranger", tmp_path):
        monkeypatch.chdir(cwd)
        got = OnnxRuntimeBackend(ours, gate_decisions=True).run(*inputs)
        assert got.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name}, working in {cwd}")


def test_validate_runs_a_file_with_external_data_from_another_folder(ws: Path, tmp_path: Path) -> None:
    ours = _with_external_data(ws / "gated.onnx", tmp_path / "ours")
    _with_external_data(ws / "gated.onnx", tmp_path / "stranger", fill=7.0)
    argv = ["validate", "--model", str(ws / "gated"), "--data", str(ws / "data" / "annotations.json")]
    argv += [
        "--images",
        str(ws / "data" / "images"),
        "--onnx",
        str(ours),
        "--report",
        str(tmp_path / "r.json"),
    ]
    result = run_gsmlp(argv, tmp_path / "stranger")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pass"] and report["parity"]["onnxruntime"]["max_abs_diff"] < 1e-3


@pytest.mark.parametrize("variable", ["GSMLP_KERNELS_LIBRARY", "GSMLP_ONNXRUNTIME_OPS_LIBRARY"])
@pytest.mark.parametrize("given", ["absent.so", "notes.txt"])
def test_a_library_named_by_a_variable_is_used_or_refused(ws: Path, variable: str, given: str) -> None:
    """Never silently replaced by the installed one: a missing path or a file that is no library is an
    error naming the variable and the path, not "internal error" and not a fallback."""
    (ws / "notes.txt").write_text("not a library\n")
    argv = ["validate", "--model", "gated", *DATA, "--onnx", "gated.onnx", "--report", "lib.json"]
    result = run_gsmlp(argv, ws, env={**os.environ, variable: given})
    assert result.returncode == 1, result.stderr
    assert f"${variable} {given}".encode() in result.stderr, result.stderr
    assert (b"no such file" if given == "absent.so" else b"not a shared library") in result.stderr
    assert b"internal error" not in result.stderr and not (ws / "lib.json").exists()


def test_links_inside_the_image_folder_are_followed_and_links_out_are_not(
    ws: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    data = tmp_path / "data"
    shutil.copytree(ws / "data", data)
    images = sorted((data / "images").iterdir())
    kept = data / "images" / "kept"
    kept.mkdir()
    images[0].rename(kept / images[0].name)
    images[0].symlink_to(Path("kept") / images[0].name)  # inside --images: followed
    (tmp_path / "elsewhere").mkdir()
    images[1].rename(tmp_path / "elsewhere" / images[1].name)
    images[1].symlink_to(tmp_path / "elsewhere" / images[1].name)  # out of --images: not read
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "eval.json"
    argv = [
        "eval",
        "--model",
        str(ws / "model"),
        "--data",
        "data/annotations.json",
        "--images",
        "data/images",
    ]
    assert main([*argv, "--report", str(report)]) == 0
    err = capsys.readouterr().err
    shown = Path("data/images") / images[1].name
    assert f"skipping unreadable image {shown}: it links to {tmp_path / 'elsewhere'}" in err
    written = json.loads(report.read_text())
    assert written["images"] == 2 and written["skipped_images"] == [images[1].name]
