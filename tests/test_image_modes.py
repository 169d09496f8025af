"""Images the model cannot take as they are (issue 27, class 5): strips whose short side rounds to 0, and
16-bit and floating-point images, scaled to the models' 8-bit range, the same way in the PyTorch path and in
the torch-free prepare_image. Real files, written by pillow; real processes for prepare_image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsmlp.cli import main
from gsmlp.model.pixels import UnusableImage, read_rgb
from gsmlp.model.processing import PreprocessConfig, preprocess
from gsmlp.model.resize import resized_size
from gsmlp.runtime import prepare_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(folder: Path) -> dict[str, Path]:
    """One file per case, each with a known gray ramp."""
    folder.mkdir(exist_ok=True)
    ramp = np.linspace(0, 1, 48 * 64).reshape(48, 64)
    files = {
        "png16": (Image.fromarray(np.rint(ramp * 65535).astype(np.uint16)), "ramp16.png"),
        "tiff-float": (Image.fromarray(ramp.astype(np.float32)), "ramp-float.tif"),
        "tiff-float255": (Image.fromarray((ramp * 255).astype(np.float32)), "ramp-float255.tif"),
        "tiff-int32": (Image.fromarray(np.rint(ramp * 65535).astype(np.int32)), "ramp-int32.tif"),
        "jpeg": (Image.fromarray(np.rint(ramp * 255).astype(np.uint8)).convert("RGB"), "ramp.jpg"),
        "strip": (Image.fromarray(np.full((1, 3000, 3), 200, np.uint8)), "strip.png"),
        "tall-strip": (Image.fromarray(np.full((3000, 1, 3), 90, np.uint8)), "tall.png"),
    }
    for image, name in files.values():
        image.save(folder / name)
    return {case: folder / name for case, (_, name) in files.items()}


def test_high_bit_depths_are_scaled_not_clipped(tmp_path: Path) -> None:
    files = _images(tmp_path)
    ramp = np.rint(np.linspace(0, 255, 48 * 64)).reshape(48, 64)
    for case in ("png16", "tiff-float", "tiff-float255", "tiff-int32", "jpeg"):
        got = np.asarray(read_rgb(files[case]), dtype=np.float64)
        assert got.shape == (48, 64, 3)
        assert np.abs(got[..., 0] - ramp).max() <= 1, case  # full black to full white, not clipped
    with Image.open(files["png16"]) as image:
        assert np.asarray(image.convert("RGB")).mean() > 250  # what pillow alone would have given


def test_samples_outside_every_range_make_the_image_unusable(tmp_path: Path) -> None:
    path = tmp_path / "negative.tif"
    Image.fromarray(np.array([[-0.5, 3.2]], np.float32)).save(path)
    with pytest.raises(UnusableImage, match=r"span \[-0.5, 3.2\]"):
        read_rgb(path)


def test_a_strip_keeps_at_least_one_pixel_and_the_long_side_bound() -> None:
    assert resized_size(1, 3000, 800, 1333) == (1, 1333)
    assert resized_size(3000, 1, 800, 1333) == (1333, 1)
    assert resized_size(480, 640, 800, 1333) == (800, 1066)  # DETR's rule, unchanged


def test_the_pytorch_path_and_prepare_image_agree(tmp_path: Path) -> None:
    config = PreprocessConfig(shortest_edge=64, longest_edge=96, pad_multiple=32)
    for case, path in _images(tmp_path).items():
        image = read_rgb(path)
        torch_values = preprocess([image], config).pixel_values.numpy()
        size = resized_size(image.height, image.width, config.shortest_edge, config.longest_edge)
        raw = prepare_image.preprocess(path, size, config.pad_multiple)
        np.testing.assert_allclose(raw, torch_values, atol=1e-6, err_msg=case)


def test_eval_takes_strips_and_high_bit_depths(tmp_path: Path, capsys) -> None:
    files = _images(tmp_path / "images")
    images, annotations = [], []
    for index, path in enumerate(files.values(), start=1):
        with Image.open(path) as image:
            width, height = image.size
        images.append({"id": index, "file_name": path.name, "width": width, "height": height})
        box = [0, 0, max(1, width // 2), max(1, height // 2)]
        annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": box})
    document = {"images": images, "annotations": annotations, "categories": [{"id": 1}], "info": {}}
    (tmp_path / "annotations.json").write_text(json.dumps(document))
    report = tmp_path / "eval.json"
    argv = ["eval", "--model", "detr-small", "--data", str(tmp_path / "annotations.json")]
    argv += ["--images", str(tmp_path / "images"), "--batch-size", "2", "--report", str(report)]
    assert main(argv) == 0, capsys.readouterr().err
    written = json.loads(report.read_text())
    assert written["images"] == len(files) and written["skipped_images"] == []


def _prepare(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gsmlp.runtime.prepare_image", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prepare_image_answers_every_bad_image_with_a_message(tmp_path: Path) -> None:
    files = _images(tmp_path)
    strip = _prepare(str(files["strip"]), "strip.raw", cwd=tmp_path)
    assert strip.returncode == 0 and "resized to 1333x1" in strip.stdout, strip.stderr
    (tmp_path / "broken.png").write_bytes(files["png16"].read_bytes()[:200])
    Image.fromarray(np.array([[np.nan, 1]], np.float32)).save(tmp_path / "nan.tif")
    for name, message in {"broken.png": "cannot read the image", "nan.tif": "not all finite",
                          "absent.png": "no such file"}.items():  # fmt: skip
        result = _prepare(name, "out.raw", cwd=tmp_path)
        assert result.returncode == 1 and message in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr and not (tmp_path / "out.raw").exists()
    same = _prepare(str(files["jpeg"]), str(files["jpeg"]), cwd=tmp_path)
    assert same.returncode == 1 and "never writes over what it reads" in same.stderr


def test_prepare_image_runs_from_the_checkout_without_torch_imported(tmp_path: Path) -> None:
    """prepare_image stays torch-free: deployment code runs it beside ONNX Runtime or TensorRT only."""
    files = _images(tmp_path)
    code = (
        "import sys; from gsmlp.runtime import prepare_image; "
        f"status = prepare_image.main([{str(files['png16'])!r}, 'o.raw']); "
        "assert 'torch' not in sys.modules; sys.exit(status)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.raw").stat().st_size == 4 * 3 * 832 * 1088  # 48x64 -> 800x1066, padded to 64
