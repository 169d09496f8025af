"""The TensorRT runtime pieces that need no TensorRT: engine metadata checks, plugin lookup, the runner's
errors without tensorrt, and the C++ sample's input helper."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsmlp.errors import GsmlpError
from gsmlp.runtime import prepare_image
from gsmlp.runtime.engine_metadata import (
    FORMAT,
    check_compatible,
    compatibility_problems,
    metadata_path,
    read_metadata,
)
from gsmlp.runtime.trt_common import PLUGIN_ENV, find_plugin_library

META = {
    "format": FORMAT,
    "tensorrt_version": "11.1.0.106",
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
}


def test_metadata_path_is_beside_the_engine() -> None:
    assert metadata_path("runs/model.engine") == Path("runs/model.engine.json")


def test_same_version_and_gpu_is_compatible() -> None:
    assert compatibility_problems(META, "11.1.0.106", "9.0") == []
    check_compatible("m.engine", META, "11.1.0.106", "9.0")


def test_each_difference_is_named() -> None:
    problems = compatibility_problems(META, "10.15.1.29", "9.0")
    assert len(problems) == 1
    assert "TensorRT version differs" in problems[0]
    assert "11.1.0.106" in problems[0] and "10.15.1.29" in problems[0]

    problems = compatibility_problems(META, "11.1.0.106", "8.9", "NVIDIA L4")
    assert len(problems) == 1
    assert "compute capability differs" in problems[0]
    assert "H100" in problems[0] and "NVIDIA L4 (compute capability 8.9)" in problems[0]

    with pytest.raises(GsmlpError, match="TensorRT version differs.*compute capability differs.*gsmlp build"):
        check_compatible("m.engine", META, "10.15.1.29", "8.6")


def test_read_metadata(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    assert read_metadata(engine) is None  # trtexec engines have none
    metadata_path(engine).write_text(json.dumps(META))
    assert read_metadata(engine)["tensorrt_version"] == "11.1.0.106"
    metadata_path(engine).write_text("{not json")
    with pytest.raises(GsmlpError, match="m.engine.json"):
        read_metadata(engine)
    metadata_path(engine).write_text(json.dumps({"format": "other"}))
    with pytest.raises(GsmlpError, match="not a gsmlp engine metadata file"):
        read_metadata(engine)


def test_plugin_library_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GsmlpError, match="absent.so: no such file"):
        find_plugin_library(tmp_path / "absent.so")
    library = tmp_path / "libgsmlp_trt_plugin.so"
    library.write_bytes(b"")
    with pytest.raises(GsmlpError, match="is not a shared library"):
        find_plugin_library(library)
    # The lookup reads only the ELF header (the loader reads the rest): an ELF shared object's first 18 bytes.
    library.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little"))
    assert find_plugin_library(library) == library.resolve()
    monkeypatch.setenv(PLUGIN_ENV, str(library))
    assert find_plugin_library(None) == library.resolve()
    monkeypatch.setenv(PLUGIN_ENV, str(tmp_path / "gone.so"))
    with pytest.raises(GsmlpError, match=r"\$GSMLP_TRT_PLUGIN .*gone.so: no such file"):
        find_plugin_library(None)


def test_runner_errors_without_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gsmlp.runtime.trt_runner import TensorRTRunner

    with pytest.raises(GsmlpError, match="absent.engine does not exist"):
        TensorRTRunner(tmp_path / "absent.engine")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(GsmlpError, match=r"install the `trt` extra"):
        TensorRTRunner(engine)


def test_runtime_does_not_import_torch() -> None:
    # Deploy-time code: a torch import anywhere in runtime/ would drag a multi-GB dependency to deployment.
    runtime_dir = Path(__file__).resolve().parents[1] / "runtime"
    for source in runtime_dir.rglob("*.py"):
        text = source.read_text()
        assert "import torch" not in text and "from torch" not in text, source


def test_prepare_image_writes_the_normalized_padded_array(tmp_path: Path) -> None:
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[:, :, 0] = 255  # pure red
    Image.fromarray(pixels).save(tmp_path / "red.png")
    out = tmp_path / "red.raw"
    argv = [str(tmp_path / "red.png"), str(out), "--shortest-edge", "60", "--longest-edge", "90"]
    assert prepare_image.main(argv) == 0
    assert prepare_image.resized_size(30, 40, 60, 90) == (60, 80)
    array = np.fromfile(out, dtype="<f4").reshape(1, 3, 64, 128)  # padded to multiples of 64
    expected = (np.array([1.0, 0.0, 0.0], dtype=np.float32) - prepare_image.MEAN) / prepare_image.STD
    np.testing.assert_allclose(array[0, :, 10, 10], expected, rtol=1e-6)
    assert not array[0, :, 60:, :].any() and not array[0, :, :, 80:].any()


def test_prepare_image_fixed_size_and_errors(tmp_path: Path) -> None:
    from gsmlp.model.processing import resized_size

    for size in [(100, 1000), (480, 640), (640, 427), (333, 333), (1000, 999)]:
        assert prepare_image.resized_size(*size, 800, 1333) == resized_size(*size, 800, 1333)
    Image.new("RGB", (50, 20)).save(tmp_path / "a.png")
    out = tmp_path / "a.raw"
    assert prepare_image.main([str(tmp_path / "a.png"), str(out), "--size", "16x24"]) == 0
    assert out.stat().st_size == 3 * 16 * 24 * 4
    assert prepare_image.main([str(tmp_path / "absent.png"), str(out)]) == 1
    assert prepare_image.main([str(tmp_path / "a.png"), str(out), "--size", "16by24"]) == 1


def test_prepare_image_matches_the_model_preprocessing(coco_subset: Path, tmp_path: Path) -> None:
    """The C++ sample's input is what gsmlp.model.processing feeds the PyTorch and ONNX backends."""
    from gsmlp.model.processing import PreprocessConfig, preprocess

    config = PreprocessConfig(shortest_edge=320, longest_edge=512)
    for image_path in sorted((coco_subset / "val2017").glob("*.jpg"))[:3]:
        out = tmp_path / "img.raw"
        argv = [str(image_path), str(out), "--shortest-edge", "320", "--longest-edge", "512"]
        assert prepare_image.main(argv) == 0
        with Image.open(image_path) as image:
            batch = preprocess([image], config)
        reference = batch.pixel_values.numpy()
        ours = np.fromfile(out, dtype="<f4").reshape(reference.shape)
        np.testing.assert_allclose(ours, reference, atol=1e-5)
