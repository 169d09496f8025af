"""Pre- and post-processing: DETR's resize rule, normalisation, padding and mask, boxes back to pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsmlp.errors import GsmlpError
from gsmlp.model.processing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Batch,
    PreprocessConfig,
    postprocess,
    preprocess,
    resized_size,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((480, 640), (800, 1066)),  # shortest side to 800, long side truncated
        ((640, 427), (1199, 800)),  # portrait
        ((200, 1000), (267, 1335)),  # capped: round(1333 * 200 / 1000) = 267, then int(267 * 5)
        ((800, 800), (800, 800)),
    ],
)
def test_resize_rule(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert resized_size(*size, 800, 1333) == expected


def test_config_json_round_trip_in_hugging_face_layout(tmp_path: Path) -> None:
    config = PreprocessConfig(shortest_edge=320, longest_edge=512, pad_multiple=32)
    config.save(tmp_path / "preprocessor_config.json")
    data = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert data["size"] == {"shortest_edge": 320, "longest_edge": 512}
    assert data["image_mean"] == list(IMAGENET_MEAN) and data["image_std"] == list(IMAGENET_STD)
    assert PreprocessConfig.from_json(tmp_path / "preprocessor_config.json") == config


def test_hugging_face_file_without_our_keys_gets_defaults(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"size": {"shortest_edge": 600, "longest_edge": 1000}}))
    assert PreprocessConfig.from_json(tmp_path / "p.json") == PreprocessConfig(600, 1000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"size": ', "not valid JSON"),
        ('{"size": {"shortest_edge": 900, "longest_edge": 500}}', "shortest_edge <= longest_edge"),
        ('{"image_std": [0.2, 0.0, 0.2]}', "image_std must be > 0"),
        ('{"image_mean": [NaN, 0.4, 0.4]}', "3 finite values"),
        ('{"size": {"shortest_edge": 800, "longest_edge": 100000}}', "longest_edge <= 8192"),
        ('{"size": {"shortest_edge": "big"}}', "size.shortest_edge is 'big'"),
        # Wrong JSON types are refused as written, never cast (issue 27).
        ('{"size": {"shortest_edge": "800"}}', "size.shortest_edge is '800'; it must be an integer"),
        ('{"size": {"shortest_edge": 800.5}}', "size.shortest_edge is 800.5"),
        ('{"pad_multiple": true}', "pad_multiple is True"),
        ('{"image_mean": ["0.4", 0.4, 0.4]}', "image_mean is"),
        ('{"size": [800, 1333]}', "size is"),
    ],
)
def test_bad_config_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "preprocessor_config.json").write_text(text)
    with pytest.raises(GsmlpError, match=rf"preprocessor_config\.json.*{message}"):
        PreprocessConfig.from_json(tmp_path / "preprocessor_config.json")


def _image(height: int, width: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_preprocess_pads_bottom_right_with_mask() -> None:
    config = PreprocessConfig(shortest_edge=64, longest_edge=128, pad_multiple=32)
    gray = Image.fromarray(np.full((30, 60), 128, dtype=np.uint8), mode="L")
    batch = preprocess([_image(40, 50), gray], config)
    assert batch.resized_sizes == [(64, 80), (64, 128)]
    assert batch.original_sizes == [(40, 50), (30, 60)]
    assert batch.pixel_values.shape == (2, 3, 64, 128) and batch.pixel_values.dtype == torch.float32
    assert batch.pixel_mask.dtype == torch.int64
    assert batch.pixel_mask[0, :, :80].all() and not batch.pixel_mask[0, :, 80:].any()
    assert (batch.pixel_values[0, :, :, 80:] == 0).all()
    # A gray image becomes RGB and is normalised per channel: (128/255 - mean) / std.
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(batch.pixel_values[1, :, 10, 10], expected)


def test_padded_size_rounds_up_to_the_multiple() -> None:
    batch = preprocess(
        [_image(50, 70)], PreprocessConfig(shortest_edge=50, longest_edge=200, pad_multiple=64)
    )
    assert batch.resized_sizes == [(50, 70)]
    assert batch.pixel_values.shape[-2:] == (64, 128)


def _batch(original_sizes: list[tuple[int, int]]) -> Batch:
    return Batch(torch.zeros(0), torch.zeros(0), original_sizes, original_sizes)


def test_postprocess_detr_softmax_drops_no_object_and_scales_boxes() -> None:
    logits = torch.full((1, 3, 5), -10.0)
    logits[0, 0, 2] = 5.0  # query 0: category 2
    logits[0, 1, 4] = 5.0  # query 1: "no object" wins, best real class is small
    logits[0, 2, 0] = 3.0  # query 2: category 0
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.75, 0.5, 0.5]]])
    (detections,) = postprocess(logits, boxes, _batch([(100, 200)]), "detr")
    assert detections.labels.tolist() == [2, 0, 0]
    assert detections.scores[0] > 0.99 and detections.scores[-1] < 0.01
    np.testing.assert_allclose(detections.boxes[0], [80, 30, 120, 70], atol=1e-4)
    np.testing.assert_allclose(detections.boxes[1], [0, 50, 100, 100], atol=1e-4)


def test_postprocess_deformable_top_k_over_queries_and_classes() -> None:
    logits = torch.full((2, 4, 3), -9.0)
    logits[0, 3, 1], logits[0, 3, 2], logits[0, 0, 0] = 4.0, 2.0, 1.0
    boxes = torch.rand(2, 4, 4)
    detections = postprocess(logits, boxes, _batch([(10, 20), (30, 40)]), "deformable-detr", top_k=3)
    assert detections[0].labels.tolist() == [1, 2, 0]
    np.testing.assert_allclose(detections[0].scores, torch.sigmoid(torch.tensor([4.0, 2.0, 1.0])).numpy())
    cx, cy, w, h = boxes[0, 3].tolist()
    np.testing.assert_allclose(
        detections[0].boxes[0],
        [(cx - w / 2) * 20, (cy - h / 2) * 10, (cx + w / 2) * 20, (cy + h / 2) * 10],
        rtol=1e-5,
    )
    assert [len(d.scores) for d in detections] == [3, 3]


def test_unknown_family_is_refused() -> None:
    with pytest.raises(GsmlpError, match="unknown model family 'yolo'"):
        postprocess(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), _batch([(1, 1)]), "yolo")
