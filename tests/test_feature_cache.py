"""The sweep's feature cache (calibration/feature_cache.py): a hit gives the detections bit for bit, holds no
pixels and no backbone feature map, a held pass is replayed without opening an image, and a bound too
small leaves batches computed as without the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsmlp.calibration.feature_cache import MB, FeatureCache
from gsmlp.data import shapes
from gsmlp.data.coco import load_coco_dataset
from gsmlp.data.evaluate import detect
from gsmlp.model.loaders import load_detector
from gsmlp.model.processing import PreprocessConfig
from tests.conftest import make_tiny_model, save_hf_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BATCH = 4  # 6 images: a full batch and a padded one of 2


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache-images")
    shapes.write_split(shapes.SplitSpec("tiny-shapes", 6, seed=11), folder, show_progress=False)
    return folder


@pytest.fixture
def detector(family: str, tmp_path: Path):
    folder = save_hf_dir(make_tiny_model(family), tmp_path / "tiny")
    PreprocessConfig(shortest_edge=96, longest_edge=160).save(folder / "preprocessor_config.json")
    return load_detector(folder)


def _dataset(images: Path):
    return load_coco_dataset(images / "annotations.json", images / "images")


def _detect(detector, dataset, cache: FeatureCache | None = None) -> dict:
    if cache is None:
        return detect(detector, dataset, BATCH, None, progress_bar=False)[0]
    with cache.installed(detector.model):
        return detect(detector, dataset, BATCH, None, progress_bar=False, batches=cache.batches)[0]


def _same(a: dict, b: dict) -> bool:
    fields = ("boxes", "scores", "labels")
    return a.keys() == b.keys() and all(
        np.array_equal(getattr(a[i], f), getattr(b[i], f)) for i in a for f in fields
    )


def test_hits_give_the_same_detections_and_hold_no_pixels_or_feature_maps(detector, images: Path) -> None:
    expected = _detect(detector, _dataset(images))
    cache = FeatureCache()
    for _ in range(3):
        assert _same(_detect(detector, _dataset(images), cache), expected)
    assert cache.summary()["hits"] == 4 and cache.misses == 2 and len(cache.records) == 2
    projected = sum(
        output.numel() * output.element_size()
        for record in cache.records.values()
        for name, output in record.outputs.items()
        if name != "backbone"
    )
    held_masks = [mask for record in cache.records.values() for _, mask in record.outputs["backbone"]]
    assert cache.bytes == projected + sum(mask.numel() * mask.element_size() for mask in held_masks)
    assert "forward" not in vars(detector.model.model.backbone)  # uninstalled
    assert _same(_detect(detector, _dataset(images)), expected)


def test_a_held_pass_opens_no_image(detector, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache()
    expected = _detect(detector, _dataset(images), cache)
    dataset = _dataset(images)
    monkeypatch.setattr(type(dataset), "_decode", lambda *_: pytest.fail("an image was decoded"))
    assert _same(_detect(detector, dataset, cache), expected)


def test_the_bound_leaves_batches_computed(detector, images: Path) -> None:
    expected = _detect(detector, _dataset(images))
    cache = FeatureCache(max_bytes=1)
    assert _same(_detect(detector, _dataset(images), cache), expected)
    assert _same(_detect(detector, _dataset(images), cache), expected)
    assert cache.hits == 0 and cache.uncached == 4 and cache.bytes == 0


def test_other_images_never_hit(images: Path, tmp_path: Path) -> None:
    folder = save_hf_dir(make_tiny_model("detr"), tmp_path / "tiny")
    PreprocessConfig(shortest_edge=96, longest_edge=160).save(folder / "preprocessor_config.json")
    detector = load_detector(folder)
    cache = FeatureCache(max_bytes=64 * MB)
    first = _dataset(images)
    _detect(detector, first.subset(first.image_ids[:4]), cache)
    later = _dataset(images)
    found = _detect(detector, later.subset(later.image_ids[2:6]), cache)
    assert cache.hits == 0 and cache.misses == 2
    assert _same(found, _detect(detector, later.subset(later.image_ids[2:6])))


def test_batches_refuse_a_model_without_the_cache(detector, images: Path) -> None:
    with pytest.raises(RuntimeError, match="installed"):
        next(FeatureCache().batches(_dataset(images), BATCH, None, detector.preprocess))
