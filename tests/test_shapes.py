"""The generated `shapes` dataset: deterministic, valid COCO, boxes inside their images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gsmlp.data.coco import quiet_coco
from gsmlp.data.shapes import CATEGORIES, SplitSpec, ensure_split, generate_image, write_split
from gsmlp.errors import GsmlpError

SMALL = SplitSpec("shapes-test", 12, seed=7)


@pytest.fixture(scope="module")
def small_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / SMALL.name
    write_split(SMALL, folder, show_progress=False)
    return folder


def test_same_seed_gives_same_bytes_and_annotations(small_split: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_split(SMALL, again, show_progress=False)
    assert (again / "annotations.json").read_bytes() == (small_split / "annotations.json").read_bytes()
    for image in sorted((small_split / "images").iterdir()):
        assert (again / "images" / image.name).read_bytes() == image.read_bytes()


def test_other_seed_gives_other_images() -> None:
    first, _ = generate_image(7, 0)
    other, _ = generate_image(8, 0)
    assert first.size != other.size or not np.array_equal(np.asarray(first), np.asarray(other))


def test_pycocotools_loads_the_split_and_boxes_lie_inside(small_split: Path) -> None:
    document = json.loads((small_split / "annotations.json").read_text())
    assert "info" in document
    assert [c["id"] for c in document["categories"]] == list(range(1, len(CATEGORIES) + 1))
    coco = quiet_coco(document)
    assert len(coco.imgs) == SMALL.num_images
    for ann in coco.anns.values():
        image = coco.imgs[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= image["width"] and y + h <= image["height"]
        assert 0 < ann["area"] <= w * h


def test_images_vary_in_size_and_object_count() -> None:
    samples = [generate_image(11, i) for i in range(40)]
    sizes = {image.size for image, _ in samples}
    counts = [len(objects) for _, objects in samples]
    assert len(sizes) > 30
    assert min(counts) <= 2 and max(counts) >= 6
    assert all(len(objects) <= 10 for _, objects in samples)


def test_ensure_split_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(GsmlpError, match="unknown generated dataset 'shapes-tset'"):
        ensure_split("shapes-tset", root=tmp_path)


def test_half_written_split_is_not_taken_as_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gsmlp.data.shapes as shapes

    def fail_on_second_image(seed: int, index: int):
        if index == 1:
            raise KeyboardInterrupt  # as a user's Ctrl-C part-way through
        return generate_image(seed, index)

    monkeypatch.setattr(shapes, "generate_image", fail_on_second_image)
    folder = tmp_path / "shapes-val"
    with pytest.raises(KeyboardInterrupt):
        write_split(SplitSpec("shapes-val", 3, seed=1), folder, show_progress=False)
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_class_map_shows_each_annotated_object_inside_its_box() -> None:
    from gsmlp.data.shapes import render_image

    rendered = render_image(7, 3)
    image, annotations = generate_image(7, 3)
    assert np.array_equal(np.asarray(rendered.image), np.asarray(image))
    assert rendered.annotations == annotations and annotations
    assert rendered.class_map.shape == (image.height, image.width)
    for ann in annotations:
        x, y, w, h = ann["bbox"]
        inside = rendered.class_map[y : y + h, x : x + w]
        assert (inside == ann["category_id"]).sum() == ann["area"]
