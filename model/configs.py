"""transformers configs for the model families gsmlp knows: full-size R50 layouts and tiny test sizes."""

from __future__ import annotations

from transformers import DeformableDetrConfig, DetrConfig, PretrainedConfig

COCO_NUM_LABELS = 91  # official DETR checkpoints: category ids 0..90 (+ "no object")


def _resnet(depths: list[int], widths: list[int], embedding: int, out_stages: list[int]) -> dict:
    return {
        "model_type": "resnet",
        "depths": depths,
        "hidden_sizes": widths,
        "embedding_size": embedding,
        "layer_type": "bottleneck" if widths[0] >= 4 * embedding else "basic",
        "out_features": [f"stage{i}" for i in out_stages],
    }


def _common(backbone: dict) -> dict:
    return {
        "use_timm_backbone": False,
        "use_pretrained_backbone": False,
        "backbone_config": backbone,
        "activation_function": "relu",
    }


def detr_r50_config(num_labels: int = COCO_NUM_LABELS) -> DetrConfig:
    """The facebookresearch DETR-R50 layout: d_model 256, 6+6 layers, FFN 2048, 100 queries."""
    backbone = _resnet([3, 4, 6, 3], [256, 512, 1024, 2048], 64, [4])
    return DetrConfig(
        **_common(backbone),
        d_model=256,
        encoder_layers=6,
        decoder_layers=6,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        num_queries=100,
        num_labels=num_labels,
    )


def deformable_detr_r50_config(num_labels: int = COCO_NUM_LABELS) -> DeformableDetrConfig:
    """The Deformable-DETR-R50 layout: d_model 256, 6+6 layers, FFN 1024, 300 queries, 4 levels."""
    backbone = _resnet([3, 4, 6, 3], [256, 512, 1024, 2048], 64, [2, 3, 4])
    return DeformableDetrConfig(
        **_common(backbone),
        d_model=256,
        encoder_layers=6,
        decoder_layers=6,
        encoder_ffn_dim=1024,
        decoder_ffn_dim=1024,
        num_queries=300,
        num_labels=num_labels,
        disable_custom_kernels=True,
    )


def tiny_config(family: str, num_labels: int = 5) -> PretrainedConfig:
    """A few-thousand-parameter model of either family, for fast tests."""
    common = dict(
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=8,
        num_labels=num_labels,
    )
    if family == "detr":
        backbone = _resnet([1, 1, 1, 1], [16, 24, 32, 48], 8, [4])
        return DetrConfig(**_common(backbone), **common, encoder_ffn_dim=256, decoder_ffn_dim=256)
    if family == "deformable-detr":
        backbone = _resnet([1, 1, 1, 1], [16, 24, 32, 48], 8, [2, 3, 4])
        return DeformableDetrConfig(
            **_common(backbone),
            **common,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            encoder_n_points=2,
            decoder_n_points=2,
            disable_custom_kernels=True,
        )
    raise ValueError(f"unknown family {family!r}: choose detr or deformable-detr")
