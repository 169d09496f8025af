"""Make a DETR-family detector give each image the same output alone or padded inside a batch.

Stock transformers DETR leaks padding into valid features in two places:
- after each frozen BatchNorm of the backbone the padded region holds the BN bias, not zero, and the
  next convolution carries it into the valid border;
- Deformable DETR's input-projection GroupNorm takes its statistics over padded positions too.

The fix keeps every weight and module name: a forward hook multiplies the output of each backbone
normalisation by the pixel mask at that layer's resolution, and the input-projection GroupNorms are
swapped in place for MaskedGroupNorm (same parameters). `mask[:, ::s, ::s]` has exactly the ceil(H/s)
rows that stride-s convolutions (k3p1, k7p3, k1p0) produce, and a max-pool after ReLU is unaffected by
zeros. With an all-ones mask every output is bit-identical to the unmodified model.
Everything is plain tensor ops with strides fixed at set-up, so the model stays ONNX-traceable.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PROBE_SIZE = 64  # a power of two larger than the backbone's coarsest stride (32)


class _PixelMask:
    """The pixel mask of the forward pass in progress, shared by the hooks of one model."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None

    def at_stride(self, stride: int, like: torch.Tensor) -> torch.Tensor:
        return self.mask[:, None, ::stride, ::stride].to(like.dtype)


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics cover valid (mask = 1) positions only; padded outputs are zero."""

    def __init__(self, norm: nn.GroupNorm, pixel_mask: _PixelMask, stride: int) -> None:
        super().__init__(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
        self.load_state_dict(norm.state_dict())
        self.pixel_mask = pixel_mask
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.pixel_mask.at_stride(self.stride, x)
        batch, channels = x.shape[:2]
        groups = x.reshape(batch, self.num_groups, channels // self.num_groups, -1)
        weights = mask.reshape(batch, 1, 1, -1)
        count = weights.sum((2, 3), keepdim=True) * groups.shape[2]
        mean = (groups * weights).sum((2, 3), keepdim=True) / count
        var = ((groups - mean).square() * weights).sum((2, 3), keepdim=True) / count
        normed = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape_as(x)
        if self.affine:
            normed = normed * self.weight[:, None, None] + self.bias[:, None, None]
        # An unpadded image takes the stock kernel, so the model without padding is unchanged bit for bit.
        unpadded = mask.flatten(1).amin(1).bool()[:, None, None, None]
        stock = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return torch.where(unpadded, stock, normed * mask)


def _is_backbone_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d) or type(module).__name__.endswith("FrozenBatchNorm2d")


def _norm_strides(backbone: nn.Module, norms: dict[str, nn.Module]) -> dict[str, int]:
    """Each norm's stride, from one forward of a small probe image through the backbone."""
    heights: dict[str, int] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: heights.__setitem__(name, out.shape[-2]))
        for name, module in norms.items()
    ]
    parameter = next(backbone.parameters())
    probe = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, dtype=parameter.dtype, device=parameter.device)
    try:
        with torch.no_grad():
            backbone(probe)
    finally:
        for handle in handles:
            handle.remove()
    return {name: PROBE_SIZE // height for name, height in heights.items()}


# The hooks are objects rather than closures: copy.deepcopy copies objects (and keeps one shared
# _PixelMask per copied model) but not closures, whose copies would keep feeding the original model.
class _MaskOutput:
    """Forward hook: zero a backbone norm's output where the pixel mask, at its stride, is zero."""

    def __init__(self, pixel_mask: _PixelMask, stride: int) -> None:
        self.pixel_mask = pixel_mask
        self.stride = stride

    def __call__(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return output * self.pixel_mask.at_stride(self.stride, output)


class _RememberMask:
    """Forward pre-hook on the backbone: keep the pass's pixel mask for the norm hooks."""

    def __init__(self, pixel_mask: _PixelMask) -> None:
        self.pixel_mask = pixel_mask

    def __call__(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.pixel_mask.mask = kwargs["pixel_mask"] if "pixel_mask" in kwargs else args[1]


def _level_strides(conv_encoder: nn.Module, input_proj: nn.ModuleList) -> list[int]:
    """Feature strides of the backbone outputs, then x2 for each extra stride-2 level."""
    parameter = next(conv_encoder.parameters())
    probe = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        features = conv_encoder.model(probe)
    maps = features.feature_maps if hasattr(features, "feature_maps") else features
    strides = [PROBE_SIZE // feature.shape[-2] for feature in maps]
    while len(strides) < len(input_proj):
        strides.append(strides[-1] * 2)
    return strides


def make_padding_invariant(model: nn.Module) -> nn.Module:
    """Install the padding fix in a transformers DETR / Deformable DETR (in place; idempotent)."""
    core = getattr(model, "model", model)
    conv_encoder = core.backbone
    if getattr(conv_encoder, "_gsmlp_padding_invariant", False):
        return model
    norms = {name: m for name, m in conv_encoder.model.named_modules() if _is_backbone_norm(m)}
    norm_strides = _norm_strides(conv_encoder.model, norms)
    input_proj = getattr(core, "input_proj", None)
    level_strides = _level_strides(conv_encoder, input_proj) if isinstance(input_proj, nn.ModuleList) else []
    pixel_mask = _PixelMask()
    conv_encoder.register_forward_pre_hook(_RememberMask(pixel_mask), with_kwargs=True)
    for name, stride in norm_strides.items():
        norms[name].register_forward_hook(_MaskOutput(pixel_mask, stride))
    if level_strides:
        for level, stride in enumerate(level_strides):
            for index, module in enumerate(input_proj[level]):
                if isinstance(module, nn.GroupNorm) and not isinstance(module, MaskedGroupNorm):
                    input_proj[level][index] = MaskedGroupNorm(module, pixel_mask, stride)
    conv_encoder._gsmlp_padding_invariant = True
    return model
