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


# Sizes a detector needs to be built at all; the defaults are transformers' own (config classes). Each has a
# bound far above any published DETR (DETR-R50: d_model 256, FFN 2048, 6 + 6 layers, 100 queries): a value
# beyond it is a damaged or hostile file, refused before torch allocates anything for it.
SIZE_BOUNDS = {"d_model": 16384, "encoder_layers": 256, "decoder_layers": 256, "encoder_ffn_dim": 65536,
               "decoder_ffn_dim": 65536, "encoder_attention_heads": 1024, "decoder_attention_heads": 1024,
               "num_queries": 10000, "num_labels": 100000}  # fmt: skip
DEFORMABLE_BOUNDS = {"num_feature_levels": 16, "encoder_n_points": 64, "decoder_n_points": 64}
BACKBONE_BOUNDS = {"embedding_size": 16384, "num_channels": 64}
BACKBONE_LIST_BOUNDS = {"hidden_sizes": 16384, "depths": 256}
# The whole model, estimated from those sizes: beyond this many parameters (8 GiB of fp32) it is no DETR.
MAX_PARAMETERS = 2**31
DEFAULT_SIZES = {"d_model": 256, "encoder_layers": 6, "decoder_layers": 6, "encoder_ffn_dim": 2048,
                 "decoder_ffn_dim": 2048, "num_queries": 100, "num_labels": 91}  # fmt: skip


def _check_size(path: Path, key: str, value: object, bound: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GsmlpError(f"{path}: {key} is {value!r}; it must be a positive integer")
    if value > bound:
        raise GsmlpError(
            f"{path}: {key} is {value}, above gsmlp's bound of {bound} (far beyond any DETR); the file is "
            "damaged, or not a detector's config"
        )


def _check_backbone(path: Path, backbone: object) -> int:
    """The ResNet backbone's sizes bounded; returns its estimated parameter count."""
    if not isinstance(backbone, dict):
        return 0
    for key, bound in BACKBONE_BOUNDS.items():
        if key in backbone:
            _check_size(path, f"backbone_config.{key}", backbone[key], bound)
    for key, bound in BACKBONE_LIST_BOUNDS.items():
        values = backbone.get(key, [])
        if not isinstance(values, list) or len(values) > 16:
            raise GsmlpError(f"{path}: backbone_config.{key} is {values!r}; it must be a list of sizes")
        for index, value in enumerate(values):
            _check_size(path, f"backbone_config.{key}[{index}]", value, bound)
    # Two 3x3 convolutions per basic block (bottleneck blocks have fewer): an upper estimate.
    widths, depths = backbone.get("hidden_sizes", []), backbone.get("depths", [])
    return sum(18 * width * width * depth for width, depth in zip(widths, depths, strict=False))


def _check_sizes(path: Path, data: dict, family: str) -> None:
    """Every size given is a positive integer within its bound, the heads divide d_model, and the model they
    declare has a size a machine can hold: all before torch builds anything."""
    bounds = {**SIZE_BOUNDS, **(DEFORMABLE_BOUNDS if family == "deformable-detr" else {})}
    for name, bound in bounds.items():
        if data.get(name) is not None:
            _check_size(path, name, data[name], bound)
    d_model = data.get("d_model")
    for name in ("encoder_attention_heads", "decoder_attention_heads"):
        heads = data.get(name)
        if d_model is not None and heads is not None and d_model % heads:
            raise GsmlpError(f"{path}: {name} {heads} does not divide d_model {d_model}")
    size = {key: data.get(key) or default for key, default in DEFAULT_SIZES.items()}
    d = size["d_model"]
    estimate = (
        size["encoder_layers"] * (4 * d * d + 2 * d * size["encoder_ffn_dim"])
        + size["decoder_layers"] * (8 * d * d + 2 * d * size["decoder_ffn_dim"])
        + (size["num_queries"] * 2 + size["num_labels"]) * d
        + _check_backbone(path, data.get("backbone_config"))
    )
    if estimate > MAX_PARAMETERS:
        shown = ", ".join(f"{key} {value}" for key, value in size.items())
        gib = estimate * 4 / 2**30
        raise GsmlpError(
            f"{path}: its sizes ({shown}) declare about {estimate:.2g} parameters ({gib:.0f} GiB of fp32 "
            f"weights), more than gsmlp's bound of {MAX_PARAMETERS:.2g}: the file is damaged, or not a "
            "detector's config"
        )


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
