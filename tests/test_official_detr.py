"""facebookresearch/detr checkpoints: the official layout, the conversion, and loading a .pth."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import pytest
import torch
from transformers import DetrForObjectDetection

from gsmlp.errors import GsmlpError
from gsmlp.model.configs import detr_r50_config
from gsmlp.model.loaders import load_detector
from gsmlp.model.official_detr import hf_to_official, official_to_hf
from tests.conftest import make_tiny_model

# What facebookresearch/detr's main.py prints as n_parameters for DETR-R50: every parameter except the
# FrozenBatchNorm2d buffers and the frozen stem and layer1 of the backbone.
OFFICIAL_TRAINABLE_PARAMETERS = 41_302_368


def official_detr_r50_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the official DETR-R50 state dict, written from its module structure."""
    shapes: dict[str, tuple[int, ...]] = {}

    def norm(prefix: str, width: int, stats: bool = False) -> None:
        for name in ("weight", "bias") + (("running_mean", "running_var") if stats else ()):
            shapes[f"{prefix}.{name}"] = (width,)

    body = "backbone.0.body"
    shapes[f"{body}.conv1.weight"] = (64, 3, 7, 7)
    norm(f"{body}.bn1", 64, stats=True)
    channels = 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        for block in range(blocks):
            prefix = f"{body}.layer{stage}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (width, channels, 1, 1)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{prefix}.conv3.weight"] = (4 * width, width, 1, 1)
            for index, out in ((1, width), (2, width), (3, 4 * width)):
                norm(f"{prefix}.bn{index}", out, stats=True)
            if block == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (4 * width, channels, 1, 1)
                norm(f"{prefix}.downsample.1", 4 * width, stats=True)
            channels = 4 * width
    shapes["input_proj.weight"], shapes["input_proj.bias"] = (256, 2048, 1, 1), (256,)
    shapes["query_embed.weight"] = (100, 256)

    def attention(prefix: str) -> None:
        shapes[f"{prefix}.in_proj_weight"], shapes[f"{prefix}.in_proj_bias"] = (768, 256), (768,)
        shapes[f"{prefix}.out_proj.weight"], shapes[f"{prefix}.out_proj.bias"] = (256, 256), (256,)

    def ffn(prefix: str) -> None:
        shapes[f"{prefix}.linear1.weight"], shapes[f"{prefix}.linear1.bias"] = (2048, 256), (2048,)
        shapes[f"{prefix}.linear2.weight"], shapes[f"{prefix}.linear2.bias"] = (256, 2048), (256,)

    for layer in range(6):
        prefix = f"transformer.encoder.layers.{layer}"
        attention(f"{prefix}.self_attn")
        ffn(prefix)
        norm(f"{prefix}.norm1", 256)
        norm(f"{prefix}.norm2", 256)
    for layer in range(6):
        prefix = f"transformer.decoder.layers.{layer}"
        attention(f"{prefix}.self_attn")
        attention(f"{prefix}.multihead_attn")
        ffn(prefix)
        for index in (1, 2, 3):
            norm(f"{prefix}.norm{index}", 256)
    norm("transformer.decoder.norm", 256)
    shapes["class_embed.weight"], shapes["class_embed.bias"] = (92, 256), (92,)
    for index, out in enumerate((256, 256, 4)):
        shapes[f"bbox_embed.layers.{index}.weight"] = (out, 256)
        shapes[f"bbox_embed.layers.{index}.bias"] = (out,)
    return shapes


def _trainable(shapes: dict[str, tuple[int, ...]]) -> int:
    frozen_norms = (".bn", ".downsample.1.")
    frozen_layers = ("backbone.0.body.conv1.", "backbone.0.body.layer1.")
    total = 0
    for key, shape in shapes.items():
        if any(part in key for part in frozen_norms) or key.startswith(frozen_layers):
            continue
        total += torch.Size(shape).numel()
    return total


@pytest.fixture(scope="module")
def hf_r50() -> DetrForObjectDetection:
    torch.manual_seed(0)
    return DetrForObjectDetection(detr_r50_config()).eval()


def test_official_key_list_matches_the_published_parameter_count() -> None:
    assert _trainable(official_detr_r50_shapes()) == OFFICIAL_TRAINABLE_PARAMETERS


def test_converted_r50_has_every_official_key_and_shape(hf_r50: DetrForObjectDetection) -> None:
    official = hf_to_official(hf_r50.state_dict())
    expected = official_detr_r50_shapes()
    assert sorted(set(expected) - set(official)) == []
    assert sorted(set(official) - set(expected)) == []
    wrong = {k: tuple(v.shape) for k, v in official.items() if tuple(v.shape) != expected[k]}
    assert wrong == {}


def test_pth_loads_to_the_same_outputs(hf_r50: DetrForObjectDetection, tmp_path: Path) -> None:
    checkpoint = {
        "model": hf_to_official(hf_r50.state_dict()),
        "args": argparse.Namespace(nheads=8, pre_norm=False, dilation=False, backbone="resnet50"),
        "epoch": 499,
    }
    torch.save(checkpoint, tmp_path / "detr-r50.pth")
    detector = load_detector(tmp_path / "detr-r50.pth")
    assert detector.family == "detr"
    pixels = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = hf_r50(pixel_values=pixels), detector.model(pixel_values=pixels)
    assert torch.equal(expected.logits, actual.logits)
    assert torch.equal(expected.pred_boxes, actual.pred_boxes)


def test_conversion_round_trip_is_exact() -> None:
    state_dict = make_tiny_model("detr").state_dict()
    back = official_to_hf(hf_to_official(state_dict))
    assert set(back) == set(state_dict)
    assert all(torch.equal(back[k], state_dict[k]) for k in state_dict)


def _tiny_pth(tmp_path: Path, **extra) -> Path:
    official = hf_to_official(make_tiny_model("detr").state_dict())
    path = tmp_path / "tiny.pth"
    torch.save({"model": official, **extra}, path)
    return path


def test_unknown_official_key_is_named(tmp_path: Path) -> None:
    official = hf_to_official(make_tiny_model("detr").state_dict())
    official["transformer.encoder.norm.weight"] = torch.ones(32)
    torch.save({"model": official}, tmp_path / "prenorm.pth")
    with pytest.raises(GsmlpError, match=r"facebookresearch/detr layout: transformer\.encoder\.norm"):
        load_detector(tmp_path / "prenorm.pth")


def test_pickled_objects_beyond_the_allow_list_are_refused(tmp_path: Path) -> None:
    path = _tiny_pth(tmp_path, saved_on=datetime.date(2020, 5, 26))
    with pytest.raises(
        GsmlpError, match=r"refused as unsafe: it needs the Python global datetime\.date.*weights_only=True"
    ):
        load_detector(path)


def test_truncated_pth(tmp_path: Path) -> None:
    path = _tiny_pth(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(GsmlpError, match=r"tiny\.pth is corrupt \(truncated, or not a PyTorch checkpoint\)"):
        load_detector(path)


def test_pth_without_model_key(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(GsmlpError, match="no 'model' state dict"):
        load_detector(tmp_path / "other.pth")


def test_unsupported_training_options_are_refused(tmp_path: Path) -> None:
    path = _tiny_pth(tmp_path, args=argparse.Namespace(dilation=True))
    with pytest.raises(GsmlpError, match=r"dilated \(DC5\) backbone \(args\.dilation\)"):
        load_detector(path)
