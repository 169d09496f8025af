"""Loading COCO datasets: every bad input gets a message naming the file, key or value at fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gsmlp.data.coco import resolve_dataset
from gsmlp.data.evaluate import METRIC_NAMES, coco_metrics
from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.errors import GsmlpError
from gsmlp.model.processing import Detections


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("coco") / "tiny"
    write_split(SplitSpec("tiny", 6, seed=5), folder, show_progress=False)
    return folder


@pytest.fixture
def copy(split: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny split, to break."""
    target = tmp_path / "copy"
    shutil.copytree(split, target)
    return target


def _edit(folder: Path, change) -> Path:
    path = folder / "annotations.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def test_loads_in_id_order_with_limit(split: Path) -> None:
    dataset = resolve_dataset(str(split / "annotations.json"), str(split / "images"))
    assert len(dataset) == 6
    ids = [image_id for image_id, _ in dataset.iterate(limit=4)]
    assert ids == [1, 2, 3, 4]
    assert dataset.category_ids == list(range(1, 11))


def test_real_coco_subset_loads(coco_subset: Path) -> None:
    dataset = resolve_dataset(
        str(coco_subset / "annotations/instances_val2017.json"), str(coco_subset / "val2017")
    )
    assert len(dataset) == 150
    assert len(dataset.category_ids) == 80 and max(dataset.category_ids) == 90
    image_id, image = next(iter(dataset))
    assert image.mode == "RGB" and image_id == min(dataset.image_ids)


@pytest.mark.parametrize(
    ("data", "images", "message"),
    [
        ("nothing.json", "x", "--data nothing.json: no such file"),
        ("shapes-val", "somewhere", "--images is only for a JSON --data"),
    ],
)
def test_bad_data_arguments(data: str, images: str, message: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GsmlpError, match=message):
        resolve_dataset(data, images)


def test_json_without_images_folder(copy: Path) -> None:
    with pytest.raises(GsmlpError, match="also give --images DIR"):
        resolve_dataset(str(copy / "annotations.json"))


def test_invalid_json_names_the_file(copy: Path) -> None:
    (copy / "annotations.json").write_text("{not json")
    with pytest.raises(GsmlpError, match=r"annotations\.json is corrupt: not valid JSON"):
        resolve_dataset(str(copy / "annotations.json"), str(copy / "images"))


def test_missing_key_is_named(copy: Path) -> None:
    path = _edit(copy, lambda d: d.pop("categories"))
    with pytest.raises(GsmlpError, match="has no 'categories' list"):
        resolve_dataset(str(path), str(copy / "images"))


def test_annotation_lacking_bbox_is_named(copy: Path) -> None:
    path = _edit(copy, lambda d: d["annotations"][0].pop("bbox"))
    with pytest.raises(GsmlpError, match=r"annotations\[0\] lacks the key\(s\) bbox"):
        resolve_dataset(str(path), str(copy / "images"))


def test_unknown_category_id_is_named(copy: Path) -> None:
    path = _edit(copy, lambda d: d["annotations"][0].update(category_id=77))
    with pytest.raises(GsmlpError, match="has category_id 77, which is not among the file's categories"):
        resolve_dataset(str(path), str(copy / "images"))


def test_missing_info_is_added_with_a_warning(copy: Path, capsys) -> None:
    path = _edit(copy, lambda d: d.pop("info"))
    dataset = resolve_dataset(str(path), str(copy / "images"))
    assert dataset.coco.dataset["info"] == {}
    assert "has no 'info' key" in capsys.readouterr().err


def test_empty_image_folder(copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GsmlpError, match="image folder .*empty is empty"):
        resolve_dataset(str(copy / "annotations.json"), str(empty))


def test_missing_images_are_skipped_and_named(copy: Path, capsys) -> None:
    (copy / "images" / "000002.jpg").unlink()
    dataset = resolve_dataset(str(copy / "annotations.json"), str(copy / "images"))
    assert 2 not in dataset.image_ids and len(dataset) == 5
    assert "1 images listed in" in capsys.readouterr().err


def test_wrong_image_folder(copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "unrelated.jpg").write_bytes(b"x")
    with pytest.raises(GsmlpError, match="none of the 6 images listed"):
        resolve_dataset(str(copy / "annotations.json"), str(other))


def test_corrupt_image_is_skipped_and_counted(copy: Path, capsys) -> None:
    (copy / "images" / "000003.jpg").write_bytes(b"not a jpeg")
    dataset = resolve_dataset(str(copy / "annotations.json"), str(copy / "images"))
    ids = [image_id for image_id, _ in dataset]
    assert ids == [1, 2, 4, 5, 6]
    assert dataset.unreadable == ["000003.jpg"]
    assert "skipping unreadable image" in capsys.readouterr().err


def _ground_truth_as_detections(dataset) -> dict[int, Detections]:
    found = {}
    for image_id in dataset.image_ids:
        anns = dataset.coco.imgToAnns[image_id]
        boxes = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=float
        ).reshape(-1, 4)
        labels = np.array([a["category_id"] for a in anns], dtype=np.int64)
        found[image_id] = Detections(boxes, np.ones(len(anns)), labels)
    return found


def test_perfect_detections_score_100(split: Path) -> None:
    dataset = resolve_dataset(str(split / "annotations.json"), str(split / "images"))
    metrics = coco_metrics(dataset, _ground_truth_as_detections(dataset))
    assert metrics["AP"] == pytest.approx(100.0) and metrics["AP50"] == pytest.approx(100.0)


def test_shifted_detections_lose_ap75_first(split: Path) -> None:
    dataset = resolve_dataset(str(split / "annotations.json"), str(split / "images"))
    found = _ground_truth_as_detections(dataset)
    for det in found.values():
        widths = det.boxes[:, 2] - det.boxes[:, 0]
        det.boxes[:, [0, 2]] += 0.2 * widths[:, None]  # IoU 0.67: a hit at 0.5, a miss at 0.75
    metrics = coco_metrics(dataset, found)
    assert metrics["AP50"] == pytest.approx(100.0)
    assert metrics["AP75"] == pytest.approx(0.0)


def test_no_detections_give_zeros_and_a_note(split: Path) -> None:
    dataset = resolve_dataset(str(split / "annotations.json"), str(split / "images"))
    empty = {
        image_id: Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
        for image_id in dataset.image_ids
    }
    metrics = coco_metrics(dataset, empty)
    assert [metrics[name] for name in METRIC_NAMES] == [0.0] * 6
    assert "no detection" in metrics["notes"][0]


def test_foreign_labels_are_ignored_and_counted(split: Path) -> None:
    dataset = resolve_dataset(str(split / "annotations.json"), str(split / "images"))
    found = {1: Detections(np.array([[0.0, 0, 10, 10]]), np.array([0.9]), np.array([0]))}
    metrics = coco_metrics(dataset, found)
    assert metrics["AP"] == 0.0
    assert "1 detections had labels" in metrics["notes"][0]
