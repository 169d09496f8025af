"""`gsmlp detect`: torch-free, its detections those of `gsmlp eval`, its pictures, the metadata in the files,
and bad input (foreign, older and broken files, images the file cannot take, TensorRT missing)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from gsmlp.cli import main
from gsmlp.deploy_metadata import FAMILY_KEY, REQUIRED_KEYS, from_props
from gsmlp.runtime.draw import PALETTE
from gsmlp.runtime.engine_metadata import FORMAT, metadata_path
from gsmlp.runtime.trt_common import tensorrt_missing
from tests.test_cli_errors import assert_clean_failure, run_gsmlp, snapshot

EVAL_IMAGES = 8
# Measured 2026-12-07 (2-core CPU): PyTorch (eval: batches of 4, padded to their largest image) against ONNX
# Runtime with the op library (detect: each image alone on the file's 320x320 canvas) differ by at most 5.3e-6
# in score and 6.7e-4 pixels in box corners on the fixture's checkpoint (1.0e-5 and 2.4e-4 on one calibrated
# with 16 images and 50 gate steps); detect --model against --onnx on the same inputs: 4.7e-6 and 5.3e-5. The
# bounds leave a factor of 3-5 for other thread counts, not room for another computation.
SCORE_ATOL, BOX_ATOL = 5e-5, 3e-3


def shapes_image(index: int = 1) -> Path:
    from gsmlp.data.shapes import ensure_split

    return ensure_split("shapes-val") / "images" / f"{index:06d}.jpg"


def read_results(folder: Path) -> list[dict]:
    return json.loads((folder / "detections.json").read_text())


def xyxy(record: dict) -> np.ndarray:
    x, y, w, h = record["bbox"]
    return np.array([x, y, x + w, y + h])


def test_detect_imports_neither_torch_nor_transformers(gated_detr_small, tmp_path: Path) -> None:
    """The real entry point in a fresh interpreter; -X importtime lists every module it imported."""
    _, onnx_path = gated_detr_small
    out = tmp_path / "out"
    command = [sys.executable, "-X", "importtime", "-m", "gsmlp", "detect", "--onnx", str(onnx_path),
               str(shapes_image()), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line
    }
    top_level = {name.split(".")[0] for name in imported}
    assert {"onnxruntime", "numpy", "PIL"} <= top_level
    assert not top_level & {"torch", "transformers", "onnx", "pycocotools", "matplotlib", "scipy"}, top_level
    assert (out / "detections.json").is_file() and (out / "000001.png").is_file()


def _eval_detections(checkpoint: Path) -> dict:
    """What `gsmlp eval --mode gated --limit EVAL_IMAGES` scores: data.evaluate.detect, batches of 4."""
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.data.evaluate import detect
    from gsmlp.model.loaders import load_detector

    detector = load_detector(str(checkpoint))
    found, _ = detect(detector, resolve_dataset("shapes-val"), batch_size=4, limit=EVAL_IMAGES)
    return found


def test_detect_agrees_with_eval_on_shapes_val(gated_detr_small, tmp_path: Path, capsys) -> None:
    checkpoint, onnx_path = gated_detr_small
    out = tmp_path / "out"
    argv = ["detect", "--onnx", str(onnx_path), "--data", "shapes-val", "--limit", str(EVAL_IMAGES)]
    assert main([*argv, "--score", "0", "--out", str(out)]) == 0
    assert "GatedSparseMLP ran on:" in capsys.readouterr().out
    ours: dict[int, list[dict]] = {}
    for record in read_results(out):
        ours.setdefault(record["image_id"], []).append(record)
    reference = _eval_detections(checkpoint)
    assert sorted(ours) == sorted(reference) and len(reference) == EVAL_IMAGES
    worst_score = worst_box = 0.0
    for image_id, expected in reference.items():
        records = ours[image_id]
        assert len(records) == len(expected.scores) == 25  # detr-small's 25 queries, all kept at --score 0
        for box, score, label in zip(expected.boxes, expected.scores, expected.labels, strict=True):
            same_label = [r for r in records if r["category_id"] == int(label)]
            match = min(same_label, key=lambda r: np.abs(xyxy(r) - box).max())
            worst_box = max(worst_box, float(np.abs(xyxy(match) - box).max()))
            worst_score = max(worst_score, abs(match["score"] - float(score)))
    assert worst_score <= SCORE_ATOL and worst_box <= BOX_ATOL, (worst_score, worst_box)


def test_pictures_show_each_box_in_its_label_colour(gated_detr_small, tmp_path: Path) -> None:
    _, onnx_path = gated_detr_small
    out = tmp_path / "out"
    assert main(["detect", "--onnx", str(onnx_path), str(shapes_image(1)), str(shapes_image(2)),
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["000001.png", "000002.png", "detections.json"]
    records = [r for r in read_results(out) if r["file_name"] == str(shapes_image(1))]
    assert records, "detr-small finds the shapes of shapes-val image 1 at score 0.5"
    with Image.open(out / "000001.png") as picture, Image.open(shapes_image(1)) as original:
        assert picture.size == original.size
        pixels = np.asarray(picture.convert("RGB"))
    best = max(records, key=lambda r: r["score"])
    x0, y0, x1, y1 = (int(round(v)) for v in xyxy(best))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(pixels.shape[1] - 1, x1), min(pixels.shape[0] - 1, y1)
    colour = np.array(PALETTE[best["category_id"] % len(PALETTE)])
    # The outline is drawn inward from the box's edges; some row at its bottom edge is the label's colour.
    rows = pixels[max(0, y1 - 3) : y1 + 2, x0 + 1 : x1].astype(int)
    in_colour = (np.abs(rows - colour).max(axis=2) == 0).mean(axis=1)
    assert in_colour.max() > 0.9, in_colour


def test_export_writes_the_runtime_metadata(gated_detr_small) -> None:
    _, onnx_path = gated_detr_small
    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    assert set(REQUIRED_KEYS) <= set(props)
    metadata = from_props(props, str(onnx_path))
    assert (metadata.family, metadata.activation, metadata.mode) == ("detr", "softmax", "gated")
    assert (metadata.shortest_edge, metadata.longest_edge, metadata.pad_multiple) == (320, 320, 64)
    assert metadata.image_mean == (0.485, 0.456, 0.406) and metadata.image_std == (0.229, 0.224, 0.225)
    assert metadata.labels[1:4] == ("circle", "square", "triangle") and metadata.label_name(0) == "N/A"


def test_the_same_detections_through_pytorch(gated_detr_small, tmp_path: Path) -> None:
    """--model runs the checkpoint on the same prepared input and decodes it the same way."""
    checkpoint, onnx_path = gated_detr_small
    images = [str(shapes_image(i)) for i in (1, 2, 5)]
    for flag, model, out in (("--onnx", onnx_path, "ort"), ("--model", checkpoint, "pt")):
        assert (
            main(["detect", flag, str(model), *images, "--score", "0.3", "--out", str(tmp_path / out)]) == 0
        )
    ort, pt = read_results(tmp_path / "ort"), read_results(tmp_path / "pt")
    assert [(r["file_name"], r["category_id"]) for r in ort] == [
        (r["file_name"], r["category_id"]) for r in pt
    ]
    np.testing.assert_allclose([r["score"] for r in ort], [r["score"] for r in pt], atol=SCORE_ATOL)
    np.testing.assert_allclose([r["bbox"] for r in ort], [r["bbox"] for r in pt], atol=BOX_ATOL)


@pytest.fixture(scope="module")
def bad_files(gated_detr_small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files a user may hand `gsmlp detect` by mistake, beside a good one."""
    _, onnx_path = gated_detr_small
    ws = tmp_path_factory.mktemp("detect-bad")
    model = onnx.load(str(onnx_path))
    (ws / "gated.onnx").write_bytes(model.SerializeToString())
    older = onnx.load(str(onnx_path))
    kept = {
        p.key: p.value for p in older.metadata_props if p.key in (FAMILY_KEY, "gsmlp.mode", "gsmlp.dtype")
    }
    del older.metadata_props[:]
    helper.set_model_props(older, kept)  # what gsmlp export wrote before the runtime metadata
    (ws / "older.onnx").write_bytes(older.SerializeToString())
    (ws / "foreign.onnx").write_bytes(foreign_onnx().SerializeToString())
    (ws / "random.onnx").write_bytes(random.Random(3).randbytes(4096))
    (ws / "photo.jpg").write_bytes(shapes_image(3).read_bytes())
    # DETR's rule caps the long side at 320 by rounding the short one: 900 x 300 becomes 321 x 107.
    Image.new("RGB", (900, 300), (40, 90, 200)).save(ws / "wide.jpg")
    (ws / "broken.jpg").write_bytes(b"not a picture")
    (ws / "empty").mkdir()
    (ws / "notes.txt").write_text("mine\n")
    engine = ws / "no-json.engine"
    engine.write_bytes(b"serialized engine bytes")
    older_engine = ws / "older.engine"
    older_engine.write_bytes(b"serialized engine bytes")
    metadata_path(older_engine).write_text(json.dumps({"format": FORMAT, "tensorrt_version": "11.1"}))
    engine_with_metadata = ws / "gated.engine"
    engine_with_metadata.write_bytes(b"serialized engine bytes")
    props = {p.key: p.value for p in model.metadata_props}
    meta = {"format": FORMAT, "metadata": props, "inputs": {"pixel_values": {"shape": [1, 3, 320, 320]}}}
    metadata_path(engine_with_metadata).write_text(json.dumps(meta))
    return ws


def foreign_onnx() -> onnx.ModelProto:
    """A valid ONNX model with the inputs and outputs of a detector, but no gsmlp metadata."""
    values = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 32, 32])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    boxes = helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Identity", ["pixel_values"], ["logits"]),
             helper.make_node("Identity", ["pixel_values"], ["pred_boxes"])]  # fmt: skip
    graph = helper.make_graph(nodes, "foreign", [values], [logits, boxes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


DETECT_CASES = {
    "foreign-file": ("--onnx foreign.onnx photo.jpg", "foreign.onnx | no gsmlp metadata | gsmlp export"),
    "older-file": ("--onnx older.onnx photo.jpg", "older.onnx | older gsmlp | gsmlp.activation | re-export"),
    "not-onnx": ("--onnx random.onnx photo.jpg", "random.onnx | ONNX Runtime cannot load"),
    "missing-onnx": ("--onnx absent.onnx photo.jpg", "--onnx absent.onnx | no such file"),
    "image-too-large": ("--onnx gated.onnx wide.jpg", "wide.jpg | 321x107 | 320x320 | --dynamic"),
    "only-unreadable-images": ("--onnx gated.onnx broken.jpg", "no image could be used | broken.jpg"),
    "folder-without-images": ("--onnx gated.onnx empty", "empty | holds no image"),
    "missing-image": ("--onnx gated.onnx absent.jpg", "IMAGE absent.jpg | no such file"),
    "no-images": ("--onnx gated.onnx", "no images"),
    "images-and-data": ("--onnx gated.onnx photo.jpg --data shapes-val", "not both"),
    "out-is-input": ("--onnx gated.onnx photo.jpg", "--out . | holds the input"),
    "out-foreign-folder": ("--onnx gated.onnx photo.jpg", "--out empty-but-mine | --force"),
    "out-is-file": ("--onnx gated.onnx photo.jpg", "--out notes.txt | file"),
    "score-above-1": ("--onnx gated.onnx photo.jpg --score 1.5", "--score | 1.5"),
    "score-nan": ("--onnx gated.onnx photo.jpg --score nan", "--score | nan"),
    "engine-without-json": ("--engine no-json.engine photo.jpg", "no-json.engine.json | gsmlp build"),
    "engine-older-json": ("--engine older.engine photo.jpg", "older.engine.json | older `gsmlp build`"),
    "plugin-lib-without-engine": (
        "--onnx gated.onnx photo.jpg --plugin-lib notes.txt",
        "--plugin-lib | --engine",
    ),
}
OUTS = {"out-is-input": ".", "out-foreign-folder": "empty-but-mine", "out-is-file": "notes.txt"}


@pytest.mark.parametrize("case", sorted(DETECT_CASES))
def test_bad_input_fails_cleanly(bad_files: Path, case: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bad_files)
    if case == "out-foreign-folder":
        (bad_files / "empty-but-mine").mkdir(exist_ok=True)
        (bad_files / "empty-but-mine" / "thesis.txt").write_text("years\n")
    before = snapshot(bad_files)
    command, named = DETECT_CASES[case]
    argv = ["detect", *command.split(), "--out", OUTS.get(case, "out")]
    status, _, err = run_gsmlp(argv, capsys)
    assert_clean_failure(status, err, named.split(" | "))
    assert status == 1
    assert snapshot(bad_files) == before


def test_engine_needs_tensorrt_and_says_so(bad_files: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine with good metadata gets as far as TensorRT; where that is missing, the message says so."""
    missing = tensorrt_missing()
    if missing is None:
        pytest.skip("TensorRT and a GPU are present: test_detect_on_an_engine runs the engine instead")
    monkeypatch.chdir(bad_files)
    status, _, err = run_gsmlp(["detect", "--engine", "gated.engine", "photo.jpg", "--out", "out"], capsys)
    assert_clean_failure(status, err, ["tensorrt"])
    assert not (bad_files / "out").exists()


def test_detect_on_an_engine(gated_detr_small, tmp_path: Path) -> None:
    """Where TensorRT runs: build the gated engine and detect with it; its boxes are ONNX Runtime's."""
    missing = tensorrt_missing()
    if missing is not None:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {missing}")
    _, onnx_path = gated_detr_small
    engine = tmp_path / "gated.engine"
    assert main(["build", "--onnx", str(onnx_path), "--out", str(engine)]) == 0
    images = [str(shapes_image(i)) for i in (1, 2)]
    assert (
        main(["detect", "--engine", str(engine), *images, "--score", "0.3", "--out", str(tmp_path / "trt")])
        == 0
    )
    assert (
        main(["detect", "--onnx", str(onnx_path), *images, "--score", "0.3", "--out", str(tmp_path / "ort")])
        == 0
    )
    trt, ort = read_results(tmp_path / "trt"), read_results(tmp_path / "ort")
    assert [r["category_id"] for r in trt] == [r["category_id"] for r in ort]
    np.testing.assert_allclose([r["bbox"] for r in trt], [r["bbox"] for r in ort], atol=0.5)


def test_an_earlier_output_is_replaced_and_nothing_else(gated_detr_small, tmp_path: Path) -> None:
    _, onnx_path = gated_detr_small
    out = tmp_path / "out"
    argv = ["detect", "--onnx", str(onnx_path), str(shapes_image(1)), "--out", str(out)]
    assert main(argv) == 0 and main(argv) == 0  # the second run replaces the first
    assert sorted(p.name for p in out.iterdir()) == ["000001.png", "detections.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_same_file_names_in_two_folders_get_two_pictures(gated_detr_small, tmp_path: Path) -> None:
    _, onnx_path = gated_detr_small
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(shapes_image(1).read_bytes())
    out = tmp_path / "out"
    assert (
        main(
            ["detect", "--onnx", str(onnx_path), str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["detections.json", "x-2.png", "x.png"]


def test_prepare_image_takes_the_file_settings(gated_detr_small, tmp_path: Path, capsys) -> None:
    """prepare_image --model: the file's resize rule, padding to its 320x320 canvas, the ORT sample's line."""
    from gsmlp.runtime import prepare_image

    _, onnx_path = gated_detr_small
    out = tmp_path / "in.raw"
    assert prepare_image.main([str(shapes_image(1)), str(out), "--model", str(onnx_path)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size == 3 * 320 * 320 * 4
    assert f"gsmlp_ort_sample --onnx {onnx_path}" in printed and "--height 320 --width 320" in printed


def test_build_carries_the_export_metadata_into_the_engine_json(gated_detr_small, tmp_path: Path) -> None:
    """What `gsmlp build` writes under "metadata" (trt_build.onnx_metadata) reads back as the ONNX file's."""
    from gsmlp.runtime.engine_metadata import model_metadata, read_metadata
    from gsmlp.runtime.trt_build import onnx_metadata

    _, onnx_path = gated_detr_small
    engine = tmp_path / "gated.engine"
    engine.write_bytes(b"serialized engine bytes")
    metadata_path(engine).write_text(json.dumps({"format": FORMAT, "metadata": onnx_metadata(onnx_path)}))
    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    assert model_metadata(engine, read_metadata(engine)) == from_props(props, str(onnx_path))
