"""`gsmlp validate` on damaged data: clear messages or counted skips; no half-written report, ever."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gsmlp.cli import main
from tests.test_validate import gated_checkpoint


def damaged_dataset(coco_subset: Path, folder: Path, *, drop_info: bool = True) -> tuple[Path, Path]:
    """Four listed images: two real, one corrupt file, one absent; optionally no `info` key."""
    document = json.loads((coco_subset / "annotations" / "instances_val2017.json").read_text())
    images = document["images"][:4]
    ids = {image["id"] for image in images}
    document["images"] = images
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in ids]
    if drop_info:
        document.pop("info", None)
    image_dir = folder / "images"
    image_dir.mkdir(parents=True)
    for image in images[:2]:
        shutil.copy(coco_subset / "val2017" / image["file_name"], image_dir / image["file_name"])
    (image_dir / images[2]["file_name"]).write_bytes(b"not a jpeg at all")
    annotations = folder / "instances.json"
    annotations.write_text(json.dumps(document))
    return annotations, image_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory, coco_subset: Path) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("exported")
    checkpoint = gated_checkpoint(folder, "detr")
    onnx_path = folder / "gated.onnx"
    assert main(["export", "--model", str(checkpoint), "--out", str(onnx_path), "--dynamic"]) == 0
    return checkpoint, onnx_path


def _validate(exported, annotations: Path, image_dir: Path, report: Path) -> int:
    checkpoint, onnx_path = exported
    argv = ["validate", "--model", str(checkpoint), "--onnx", str(onnx_path), "--data", str(annotations)]
    return main([*argv, "--images", str(image_dir), "--report", str(report)])


def test_corrupt_and_absent_images_are_skipped_and_counted(
    exported, coco_subset: Path, tmp_path: Path
) -> None:
    annotations, image_dir = damaged_dataset(coco_subset, tmp_path)  # also: no `info` key
    report_path = tmp_path / "report.json"
    assert _validate(exported, annotations, image_dir, report_path) == 0
    report = json.loads(report_path.read_text())
    listed = [image["file_name"] for image in json.loads(annotations.read_text())["images"]]
    assert report["images"] == 2
    assert report["skipped_images"] == [listed[2]] and report["missing_images"] == [listed[3]]
    assert report["backends"]["onnxruntime"]["metrics"] is not None and report["pass"] is True
    markdown = (tmp_path / "report.md").read_text()
    assert "skipped images: 1" in markdown and "missing images: 1" in markdown


def test_unknown_category_id_is_named(exported, coco_subset: Path, tmp_path: Path, capsys) -> None:
    annotations, image_dir = damaged_dataset(coco_subset, tmp_path)
    document = json.loads(annotations.read_text())
    document["annotations"][0]["category_id"] = 987654
    annotations.write_text(json.dumps(document))
    assert _validate(exported, annotations, image_dir, tmp_path / "report.json") == 1
    assert "987654" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_empty_detection_list_scores_zero_with_a_note(coco_subset: Path) -> None:
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.data.evaluate import coco_metrics

    dataset = resolve_dataset(
        str(coco_subset / "annotations" / "instances_val2017.json"), str(coco_subset / "val2017")
    )
    metrics = coco_metrics(dataset, {})
    assert metrics["AP"] == 0.0 and metrics["notes"]


def test_interrupted_validate_writes_no_report(
    exported, coco_subset: Path, tmp_path: Path, monkeypatch
) -> None:
    from gsmlp.validation import harness

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "run_backend", interrupt)
    annotations, image_dir = damaged_dataset(coco_subset, tmp_path / "data")
    assert _validate(exported, annotations, image_dir, tmp_path / "report.json") == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
