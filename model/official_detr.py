"""facebookresearch/detr checkpoints <-> the transformers DetrForObjectDetection layout.

The official model: a torchvision ResNet (`backbone.0.body`, FrozenBatchNorm2d), a 1x1 `input_proj`,
`query_embed`, a post-norm nn.Transformer-style encoder/decoder whose attention packs q, k, v into one
`in_proj_weight`, a decoder final `norm`, `class_embed` (num_classes + 1 "no object") and a 3-layer
`bbox_embed`. transformers keeps the same computation under other names, with q/k/v split.
"""

from __future__ import annotations

import argparse
import re

import torch
from transformers import DetrConfig

from gsmlp.errors import GsmlpError
from gsmlp.model.configs import detr_r50_config

# Key prefixes of each layout; `{n}` placeholders are integers copied across.
_HF_RESNET = "model.backbone.model."
_OFFICIAL_BLOCK = "backbone.0.body.layer{s}.{b}."
_HF_BLOCK = _HF_RESNET + "encoder.stages.{s-1}.layers.{b}."
_OFFICIAL_ENC, _HF_ENC = "transformer.encoder.layers.{i}.", "model.encoder.layers.{i}."
_OFFICIAL_DEC, _HF_DEC = "transformer.decoder.layers.{i}.", "model.decoder.layers.{i}."

# (official pattern, transformers pattern)
_RENAMES: list[tuple[str, str]] = [
    ("backbone.0.body.conv1.weight", _HF_RESNET + "embedder.embedder.convolution.weight"),
    ("backbone.0.body.bn1.{p}", _HF_RESNET + "embedder.embedder.normalization.{p}"),
    (_OFFICIAL_BLOCK + "downsample.0.weight", _HF_BLOCK + "shortcut.convolution.weight"),
    (_OFFICIAL_BLOCK + "downsample.1.{p}", _HF_BLOCK + "shortcut.normalization.{p}"),
    (_OFFICIAL_BLOCK + "conv{c}.weight", _HF_BLOCK + "layer.{c-1}.convolution.weight"),
    (_OFFICIAL_BLOCK + "bn{c}.{p}", _HF_BLOCK + "layer.{c-1}.normalization.{p}"),
    ("input_proj.{p}", "model.input_projection.{p}"),
    ("query_embed.weight", "model.query_position_embeddings.weight"),
    (_OFFICIAL_ENC + "self_attn.out_proj.{p}", _HF_ENC + "self_attn.o_proj.{p}"),
    (_OFFICIAL_ENC + "linear1.{p}", _HF_ENC + "mlp.fc1.{p}"),
    (_OFFICIAL_ENC + "linear2.{p}", _HF_ENC + "mlp.fc2.{p}"),
    (_OFFICIAL_ENC + "norm1.{p}", _HF_ENC + "self_attn_layer_norm.{p}"),
    (_OFFICIAL_ENC + "norm2.{p}", _HF_ENC + "final_layer_norm.{p}"),
    (_OFFICIAL_DEC + "self_attn.out_proj.{p}", _HF_DEC + "self_attn.o_proj.{p}"),
    (_OFFICIAL_DEC + "multihead_attn.out_proj.{p}", _HF_DEC + "encoder_attn.o_proj.{p}"),
    (_OFFICIAL_DEC + "linear1.{p}", _HF_DEC + "mlp.fc1.{p}"),
    (_OFFICIAL_DEC + "linear2.{p}", _HF_DEC + "mlp.fc2.{p}"),
    (_OFFICIAL_DEC + "norm1.{p}", _HF_DEC + "self_attn_layer_norm.{p}"),
    (_OFFICIAL_DEC + "norm2.{p}", _HF_DEC + "encoder_attn_layer_norm.{p}"),
    (_OFFICIAL_DEC + "norm3.{p}", _HF_DEC + "final_layer_norm.{p}"),
    ("transformer.decoder.norm.{p}", "model.decoder.layernorm.{p}"),
    ("class_embed.{p}", "class_labels_classifier.{p}"),
    ("bbox_embed.layers.{i}.{p}", "bbox_predictor.layers.{i}.{p}"),
]
# Packed attention projections: official in_proj = cat(q, k, v) along the output dimension.
_PACKED: list[tuple[str, str]] = [
    (_OFFICIAL_ENC + "self_attn", _HF_ENC + "self_attn"),
    (_OFFICIAL_DEC + "self_attn", _HF_DEC + "self_attn"),
    (_OFFICIAL_DEC + "multihead_attn", _HF_DEC + "encoder_attn"),
]
_FIELD = re.compile(r"\{(\w)(-1)?\}")
_PLACEHOLDER = re.compile(r"\{(\w)([+-]1)?\}")


def _compile(pattern: str) -> re.Pattern:
    """`a.{i}.{p}` -> a regex with named groups: integers for letters other than p, a word for p."""
    parts, last = [], 0
    for match in _FIELD.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        name = match.group(1)
        parts.append(rf"(?P<{name}>\w+)" if name == "p" else rf"(?P<{name}>\d+)")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts) + "$")


def _fill(pattern: str, values: dict[str, str]) -> str:
    """Fill `{x}`, `{x-1}` and `{x+1}` placeholders from the matched integers and words."""

    def value(match: re.Match) -> str:
        raw, offset = values[match.group(1)], match.group(2)
        return str(int(raw) + int(offset)) if offset else raw

    return _PLACEHOLDER.sub(value, pattern)


def _rename_rules(to_hf: bool) -> list[tuple[re.Pattern, str]]:
    """(regex over source keys, target pattern); official stage/conv numbers are 1-based."""
    if to_hf:
        return [(_compile(official), hf) for official, hf in _RENAMES]
    rules = []
    for official, hf in _RENAMES:
        source = hf.replace("{s-1}", "{s}").replace("{c-1}", "{c}")
        target = official.replace("{s}", "{s+1}").replace("{c}", "{c+1}")
        rules.append((_compile(source), target))
    return rules


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for regex, target in rules:
        match = regex.match(key)
        if match:
            return _fill(target, match.groupdict())
    return None


def official_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official DETR key names -> transformers DetrForObjectDetection ones (q/k/v split)."""
    rules = _rename_rules(to_hf=True)
    packed = [(_compile(o + ".in_proj_{p}"), h) for o, h in _PACKED]
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue  # FrozenBatchNorm2d never uses it
        target = _rename(key, rules)
        if target is not None:
            converted[target] = tensor
            continue
        for regex, hf in packed:
            match = regex.match(key)
            if match:
                values = match.groupdict()
                kind = "weight" if values.pop("p") == "weight" else "bias"
                prefix = _fill(hf, values)
                for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True):
                    converted[f"{prefix}.{name}.{kind}"] = part.clone()
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise GsmlpError(f"{len(unknown)} keys are not in the facebookresearch/detr layout: {shown}")
    return converted


def hf_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of official_to_hf: a transformers DETR state dict in the official layout."""
    rules = _rename_rules(to_hf=False)
    converted: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[str, torch.Tensor]] = {}
    split = re.compile(r"(?P<prefix>.+)\.(?P<proj>[qkv])_proj\.(?P<kind>weight|bias)$")
    for key, tensor in state_dict.items():
        if key.endswith(".mlp.threshold"):
            continue  # gsmlp's own buffer; not part of DETR
        target = _rename(key, rules)
        if target is not None:
            converted[target] = tensor
            continue
        match = split.match(key)
        if match is None:
            raise GsmlpError(f"{key} has no counterpart in the facebookresearch/detr layout")
        packed.setdefault(f"{match['prefix']}|{match['kind']}", {})[match["proj"]] = tensor
    inverse_packed = [(_compile(h), o) for o, h in _PACKED]
    for name, parts in packed.items():
        prefix, kind = name.split("|")
        for regex, official in inverse_packed:
            match = regex.match(prefix)
            if match:
                target = _fill(official, match.groupdict()) + f".in_proj_{kind}"
                converted[target] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
                break
        else:
            raise GsmlpError(f"{prefix} attention has no counterpart in the facebookresearch/detr layout")
    return converted


def _count(state_dict: dict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for key in state_dict if (m := regex.match(key))})


def config_from_official(state_dict: dict[str, torch.Tensor], args: object = None) -> DetrConfig:
    """The DetrConfig that fits an official state dict: sizes from the weights, heads from `args`."""
    try:
        num_classes = state_dict["class_embed.weight"].shape[0] - 1
        d_model = state_dict["query_embed.weight"].shape[1]
        num_queries = state_dict["query_embed.weight"].shape[0]
        ffn = state_dict["transformer.encoder.layers.0.linear1.weight"].shape[0]
    except KeyError as exc:
        raise GsmlpError(f"not a facebookresearch/detr state dict: it has no {exc.args[0]}") from None
    depths = [_count(state_dict, rf"backbone\.0\.body\.layer{s}\.(\d+)\.") for s in range(1, 5)]
    args = args if isinstance(args, argparse.Namespace) else argparse.Namespace()
    unsupported = {"pre_norm": "pre-norm transformer layers", "dilation": "a dilated (DC5) backbone"}
    for flag, reason in unsupported.items():
        if getattr(args, flag, False):
            raise GsmlpError(f"this checkpoint uses {reason} (args.{flag}); gsmlp converts the plain DETR")
    config = detr_r50_config(num_labels=num_classes)
    heads = getattr(args, "nheads", 8)
    config.d_model = d_model
    config.num_queries = num_queries
    config.encoder_layers = _count(state_dict, r"transformer\.encoder\.layers\.(\d+)\.")
    config.decoder_layers = _count(state_dict, r"transformer\.decoder\.layers\.(\d+)\.")
    config.encoder_ffn_dim = config.decoder_ffn_dim = ffn
    config.encoder_attention_heads = config.decoder_attention_heads = int(heads)
    config.backbone_config.depths = depths
    return config
