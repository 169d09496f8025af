"""A loaded detector and how a transformers model becomes one: build, wrap the FFNs, fix padding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn
from transformers import (
    DeformableDetrConfig,
    DeformableDetrForObjectDetection,
    DetrConfig,
    DetrForObjectDetection,
    PretrainedConfig,
)

from gsmlp.errors import GsmlpError
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.processing import PreprocessConfig
from gsmlp.model.weights import read_json
from gsmlp.model.wrap import wrap_ffns

# family -> (transformers model_type, config class, model class)
FAMILIES: dict[str, tuple[str, type, type]] = {
    "detr": ("detr", DetrConfig, DetrForObjectDetection),
    "deformable-detr": ("deformable_detr", DeformableDetrConfig, DeformableDetrForObjectDetection),
}


@dataclass
class LoadedDetector:
    model: nn.Module  # eval mode, every FFN a GatedSparseMLP, padding-invariant
    family: str  # "detr" | "deformable-detr"
    preprocess: PreprocessConfig
    source: str
    gated: dict | None = None  # the gated checkpoint's gsmlp.json, None for a plain detector


def family_of(model: nn.Module) -> str:
    """ "detr" or "deformable-detr", from the model's transformers config."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for family, (known_type, _, _) in FAMILIES.items():
        if model_type == known_type:
            return family
    raise GsmlpError(
        f"model_type {model_type!r} is not DETR or Deformable DETR: gsmlp supports detr and deformable_detr"
    )


def read_config(path: Path) -> tuple[PretrainedConfig, str]:
    """A config.json of either family -> (config, family)."""
    data = read_json(path)
    if data.get("use_timm_backbone"):
        raise GsmlpError(
            f"{path} asks for a timm backbone (use_timm_backbone: true); gsmlp uses the transformers "
            "ResNet backbone (use_timm_backbone: false), which exports to ONNX without timm"
        )
    model_type = data.get("model_type")
    for family, (known_type, config_class, _) in FAMILIES.items():
        if model_type == known_type:
            _check_sizes(path, data, family)
            try:
                return config_class.from_dict(data), family
            except Exception as exc:  # transformers validates fields with several exception types
                first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
                raise GsmlpError(f"{path} is not a valid {known_type} config: {first}") from None
    accepted = ", ".join(repr(t) for t, _, _ in FAMILIES.values())
    raise GsmlpError(f"{path}: model_type is {model_type!r}; gsmlp loads {accepted}")


# Sizes a detector needs to be built at all; the defaults are transformers' own (config classes).
POSITIVE_SIZES = ("d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim",
                  "encoder_attention_heads", "decoder_attention_heads", "num_queries")  # fmt: skip
DEFORMABLE_SIZES = ("num_feature_levels", "encoder_n_points", "decoder_n_points")


def _check_sizes(path: Path, data: dict, family: str) -> None:
    """Every size given is a positive integer and the heads divide d_model, before torch builds anything."""
    names = POSITIVE_SIZES + (DEFORMABLE_SIZES if family == "deformable-detr" else ())
    for name in names:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GsmlpError(f"{path}: {name} is {value!r}; it must be a positive integer")
    d_model = data.get("d_model")
    for name in ("encoder_attention_heads", "decoder_attention_heads"):
        heads = data.get(name)
        if d_model is not None and heads is not None and d_model % heads:
            raise GsmlpError(f"{path}: {name} {heads} does not divide d_model {d_model}")


def prepare_config(config: PretrainedConfig, family: str) -> PretrainedConfig:
    """Settings every gsmlp detector runs with, whatever its checkpoint asked for (in place)."""
    if family not in FAMILIES:
        raise GsmlpError(f"unknown model family {family!r}: choose one of {', '.join(FAMILIES)}")
    # Weights always come from the checkpoint; never download a pretrained backbone.
    config.use_pretrained_backbone = False
    if family == "deformable-detr":
        # The pure-PyTorch attention path: the same numbers on CPU and GPU, and exportable to ONNX.
        config.disable_custom_kernels = True
    return config


def build_detector(config: PretrainedConfig, family: str) -> nn.Module:
    """A randomly initialised transformers detector of `family` (eval mode, FFNs not wrapped yet)."""
    return FAMILIES[family][2](prepare_config(config, family)).eval()


def ready_for_gsmlp(model: nn.Module, block_size: int) -> nn.Module:
    """Every FFN wrapped (dense mode: the same function) and padding made harmless."""
    wrap_ffns(model, block_size=block_size)
    make_padding_invariant(model)
    return model.eval()
