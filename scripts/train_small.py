"""Train the built-in small DETR or Deformable DETR on generated `shapes` images (docs/models.md).

    python scripts/train_small.py --family detr --out runs/train/detr-small
    python scripts/train_small.py --family deformable-detr --out runs/train/deformable-detr-small

Two phases, one schedule:
1. backbone pretraining (`--pretrain-steps`): the ResNet learns the generator's per-pixel class map
   through a small segmentation head at each feature stride; the head is discarded afterwards;
2. detection (`--steps`): the whole model, with transformers' own Hungarian losses on every decoder
   layer, Group DETR query groups (training only: group 0 is the saved query set) and the segmentation
   loss kept as an auxiliary term.

Every parameter trains; the script refuses to start if one is frozen. Training images are rendered on
the fly from the `shapes-train` seed (image i of step s is index s * batch + i), so there is no epoch and
no image is seen twice; `shapes-val` and any other seed stay unseen. The saved weights are an exponential
moving average. Writes a Hugging Face folder (config.json, model.safetensors, preprocessor_config.json,
training_log.csv), replaced whole at every checkpoint, and the resumable state `<out>.state.pt`:
`--resume` continues from it after an interruption. Seeded: the same command on the same software gives
the same curve.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from transformers import (
    DeformableDetrConfig,
    DeformableDetrForObjectDetection,
    DetrConfig,
    DetrForObjectDetection,
    PretrainedConfig,
)

from gsmlp.data.shapes import CATEGORIES, SPLITS, render_image
from gsmlp.io import atomic_directory, atomic_path
from gsmlp.model.block_size import DEFAULT_BLOCK_SIZE
from gsmlp.model.configs import _common, _resnet
from gsmlp.model.padding import make_padding_invariant
from gsmlp.model.processing import PreprocessConfig, preprocess

NUM_LABELS = len(CATEGORIES) + 1  # class index == category id (1..K); index 0 is never a target
IGNORE = 255  # class-map value of padded pixels
OBJECT_WEIGHT = 4.0  # extra weight of the class-map cells that objects cover
# The generator draws images 160-320 px a side with objects from 16 px across: scaling the longer side to
# 320 never shrinks an image, so the smallest objects keep at least one stride-16 token.
PREPROCESS = PreprocessConfig(shortest_edge=320, longest_edge=320)
MODEL_CLASSES = {"detr": DetrForObjectDetection, "deformable-detr": DeformableDetrForObjectDetection}


def small_config(family: str) -> PretrainedConfig:
    """The shipped small layouts; FFN hidden/d_model keeps the real ratio (8x DETR, 4x Deformable)."""
    shared = dict(
        d_model=128,
        encoder_layers=3,
        decoder_layers=3,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        num_labels=NUM_LABELS,
        # The names travel into every export (gsmlp.deploy_metadata); index 0 is never a target.
        id2label={0: "N/A", **{i + 1: name for i, name in enumerate(CATEGORIES)}},
        auxiliary_loss=True,
        dropout=0.0,
    )
    if family == "detr":
        # A stride-16 backbone (three stages): the shapes are small, stride 32 would lose them.
        backbone = _resnet([1, 2, 2], [32, 64, 128], 32, [3])
        return DetrConfig(
            **_common(backbone), **shared, encoder_ffn_dim=1024, decoder_ffn_dim=1024, num_queries=25
        )
    if family == "deformable-detr":
        # Strides 16 and 32 plus the extra stride-64 level: a stride-8 level would quadruple the
        # encoder tokens and made a CPU step 4x slower (measured 5.2 s vs 1.2 s, batch 8).
        backbone = _resnet([1, 1, 1, 1], [32, 64, 128, 256], 32, [3, 4])
        return DeformableDetrConfig(
            **_common(backbone),
            **shared,
            num_feature_levels=3,
            encoder_ffn_dim=512,
            decoder_ffn_dim=512,
            num_queries=50,
            disable_custom_kernels=True,
            with_box_refine=True,
            class_cost=2,
        )
    raise SystemExit(f"unknown family {family!r}: choose detr or deformable-detr")


# --- data -------------------------------------------------------------------------------------------


@dataclass
class TrainingBatch:
    pixel_values: torch.Tensor
    pixel_mask: torch.Tensor
    labels: list[dict]  # transformers' DETR targets: class_labels, boxes (cx, cy, w, h relative)
    class_maps: torch.Tensor  # [B, H, W] int64 category per pixel, IGNORE where padded


def _flipped(rendered, flip: bool) -> tuple[Image.Image, np.ndarray, list]:
    boxes = [(a["category_id"], a["bbox"]) for a in rendered.annotations]
    if not flip:
        return rendered.image, rendered.class_map, boxes
    width = rendered.image.width
    mirrored = [(c, [width - x - w, y, w, h]) for c, (x, y, w, h) in boxes]
    return rendered.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rendered.class_map[:, ::-1], mirrored


def _target(boxes: list, width: int, height: int) -> dict:
    labels = [category for category, _ in boxes]
    relative = [
        [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height] for _, (x, y, w, h) in boxes
    ]
    return {
        "class_labels": torch.tensor(labels, dtype=torch.long),
        "boxes": torch.tensor(relative, dtype=torch.float32).reshape(-1, 4),
    }


def training_batch(seed: int, indices: list[int], config: PreprocessConfig) -> TrainingBatch:
    """Render, flip (per image, seeded) and preprocess exactly as evaluation does (gsmlp's preprocess)."""
    images, maps, labels = [], [], []
    for index in indices:
        flip = bool(np.random.default_rng([seed, index, 1]).random() < 0.5)
        image, class_map, boxes = _flipped(render_image(seed, index), flip)
        images.append(image)
        maps.append(class_map)
        labels.append(_target(boxes, image.width, image.height))
    batch = preprocess(images, config)
    class_maps = torch.full(batch.pixel_mask.shape, IGNORE, dtype=torch.long)
    for row, (class_map, (height, width)) in enumerate(zip(maps, batch.resized_sizes, strict=True)):
        resized = Image.fromarray(np.ascontiguousarray(class_map)).resize((width, height), Image.NEAREST)
        class_maps[row, :height, :width] = torch.from_numpy(np.asarray(resized, dtype=np.int64))
    return TrainingBatch(batch.pixel_values, batch.pixel_mask, labels, class_maps)


# --- training-only heads: segmentation and query groups ---------------------------------------------


class SegmentationHeads(nn.Module):
    """One small per-pixel classifier on each backbone output; discarded after training."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, NUM_LABELS, 1))
            for c in channels
        )

    def loss(self, features: list[torch.Tensor], class_maps: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy against each cell's class fractions, over the cells that are not padding."""
        total = features[0].new_zeros(())
        for head, feature in zip(self.heads, features, strict=True):
            total = total + self.soft_cross_entropy(head(feature), class_maps)
        return total / len(self.heads)

    @staticmethod
    def soft_cross_entropy(logits: torch.Tensor, class_maps: torch.Tensor) -> torch.Tensor:
        """Cells weighted by their valid pixels, x(1 + OBJECT_WEIGHT) where objects cover them: most cells
        are background, and telling the ten shapes apart is what the detector needs from the backbone."""
        counts = _cell_class_counts(class_maps, logits.shape[-2:])
        valid = counts[:, :NUM_LABELS].sum(1, keepdim=True)
        fractions = counts[:, :NUM_LABELS] / valid.clamp(min=1)
        per_cell = -(fractions * F.log_softmax(logits, 1)).sum(1, keepdim=True)
        weight = valid * (1 + OBJECT_WEIGHT * (1 - fractions[:, :1]))
        return (per_cell * weight).sum() / weight.sum().clamp(min=1)


def _cell_class_counts(class_maps: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """[B, NUM_LABELS + 1, h, w] pixel counts per class in each feature cell; the last bin is padding.

    One bincount over the pixels: a one-hot map at full resolution cost a tenth of a training step.
    """
    batch, height, width = class_maps.shape
    rows, cols = size
    stride_y, stride_x = -(-height // rows), -(-width // cols)
    cell_y = torch.arange(height) // stride_y
    cell_x = torch.arange(width) // stride_x
    cell = (cell_y[:, None] * cols + cell_x[None, :]).expand(batch, -1, -1)
    image = torch.arange(batch)[:, None, None] * (rows * cols)
    bins = NUM_LABELS + 1
    label = class_maps.clamp(max=NUM_LABELS)  # IGNORE -> the padding bin
    flat = ((image + cell) * bins + label).flatten()
    counts = torch.bincount(flat, minlength=batch * rows * cols * bins).float()
    return counts.view(batch, rows, cols, bins).permute(0, 3, 1, 2)


class EncoderClassHead(nn.Module):
    """The class map, read from the encoder's stride-16 tokens: encoder memory that names what is where
    gives the decoder's cross-attention something to find (training only; discarded)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(d_model, NUM_LABELS)

    def loss(self, memory: torch.Tensor, size: torch.Size, class_maps: torch.Tensor) -> torch.Tensor:
        rows, cols = size
        tokens = memory[:, : rows * cols].reshape(memory.shape[0], rows, cols, -1)
        logits = self.classifier(tokens).permute(0, 3, 1, 2)
        return SegmentationHeads.soft_cross_entropy(logits, class_maps)


class ActivationSparsity:
    """The Hoyer measure of every FFN's ReLU outputs, (sum |a|)^2 / (n sum a^2) per token: the fraction of
    its n neurons (or, with `block_size` > 1, of its n blocks of neurons) that a token effectively uses
    (training only).

    Large pretrained transformers leave most FFN neurons at zero, which is what SIBS and MGS exploit; the
    small built-ins, trained briefly from scratch, did not: deformable-detr-small at step 8,600 had 72 %
    zeros, a block-32 oracle of 0.19, and MGS at sparsity 0.9 cost it 35 AP points. The measure is
    scale-invariant: an L1 penalty would let fc1 shrink and fc2 grow instead of silencing neurons.
    MGS skips whole blocks, and neuron zeros alone do not fill them: detr-small at 96 % zeros still had a
    block-8 oracle of 0.85-0.88, as a token's few active neurons fell in different blocks. The block form
    (the Hoyer measure of the blocks' L2 norms, blocks of contiguous neurons) rewards concentrating a
    token's activity in few blocks.
    """

    def __init__(self, model: nn.Module, block_size: int = 1) -> None:
        self.block_size = block_size
        self.values: list[torch.Tensor] = []
        for name, module in model.named_modules():
            if name.endswith(".mlp.fc1"):
                module.register_forward_hook(lambda _m, _i, out: self.values.append(self.hoyer(out)))

    def hoyer(self, pre: torch.Tensor) -> torch.Tensor:
        active = F.relu(pre).flatten(0, -2)
        if self.block_size > 1:
            padding = -active.shape[-1] % self.block_size
            active = F.pad(active, (0, padding)).unflatten(-1, (-1, self.block_size)).norm(dim=-1)
        l1, l2 = active.sum(-1), active.square().sum(-1)
        return (l1.square() / (active.shape[-1] * l2.clamp(min=1e-12))).mean()

    def loss(self) -> torch.Tensor:
        value = torch.stack(self.values).mean()
        self.values.clear()
        return value


class AttentionGuidance:
    """DETR's cross-attention pulled onto each matched object (training only; the model is unchanged).

    DETR's queries carry no location: its decoder must learn where to look from the loss alone, and a
    from-scratch detr-small sat on the "no object + average box" plateau (loss ~15.5) for thousands of
    steps while deformable-detr-small, whose queries have reference points, did not. For every query that
    the Hungarian matcher gives an object, -log(attention mass inside the object's box), averaged over
    heads and decoder layers.
    """

    def __init__(self, model: nn.Module, groups: int) -> None:
        from transformers.loss.loss_for_object_detection import HungarianMatcher

        config = model.config
        self.matcher = HungarianMatcher(config.class_cost, config.bbox_cost, config.giou_cost)
        self.groups = groups
        self.maps: list[torch.Tensor] = []
        model.set_attn_implementation("eager")  # sdpa returns no attention weights
        for layer in model.model.decoder.layers:
            layer.encoder_attn.register_forward_hook(lambda _m, _i, out: self.maps.append(out[1]))

    def loss(self, out, labels: list[dict], pixel_mask: torch.Tensor, size: torch.Size) -> torch.Tensor:
        attention = torch.stack(self.maps).mean((0, 2))  # [B * K, Q, rows * cols]
        self.maps.clear()
        queries = attention.shape[1]
        inside_by_image = [_box_cells(t["boxes"], m, size) for t, m in zip(labels, pixel_mask, strict=True)]
        total, count = attention.new_zeros(()), 0
        for g in range(self.groups):
            part = slice(g * queries, (g + 1) * queries)
            found = {"logits": out.logits[:, part].detach(), "pred_boxes": out.pred_boxes[:, part].detach()}
            for b, (query, target) in enumerate(self.matcher(found, labels)):
                if len(query):
                    mass = (attention[b * self.groups + g, query] * inside_by_image[b][target]).sum(-1)
                    total = total - mass.clamp(min=1e-6).log().sum()
                    count += len(query)
        return total / max(count, 1)


def _box_cells(boxes: torch.Tensor, pixel_mask: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """[N, rows * cols] 1 for the feature cells that a box (relative cx, cy, w, h) overlaps."""
    rows, cols = size
    stride_y, stride_x = pixel_mask.shape[0] / rows, pixel_mask.shape[1] / cols
    height, width = float(pixel_mask[:, 0].sum()), float(pixel_mask[0].sum())
    cx, cy, w, h = (boxes * torch.tensor([width, height, width, height])).unbind(-1)
    y = (torch.arange(rows) + 0.5) * stride_y
    x = (torch.arange(cols) + 0.5) * stride_x
    # a cell counts when its centre is inside the box, or it holds the box centre (tiny boxes)
    in_y = (y[None] - cy[:, None]).abs() <= (h[:, None] / 2).clamp(min=stride_y / 2)
    in_x = (x[None] - cx[:, None]).abs() <= (w[:, None] / 2).clamp(min=stride_x / 2)
    return (in_y[:, :, None] & in_x[:, None, :]).flatten(1).float()


_QUERY_ARGS = ("inputs_embeds", "object_queries_position_embeddings", "reference_points")
_MEMORY_ARGS = (
    "encoder_hidden_states",
    "encoder_attention_mask",
    "spatial_position_embeddings",
    "valid_ratios",
)


def _grouped_decoder(forward, groups: int, family: str):
    """Wrap the decoder's forward: K query groups run as K x the batch, so no group sees another."""

    def run(**kwargs):
        batch, total = kwargs["inputs_embeds"].shape[:2]
        queries = total // groups
        for name in _QUERY_ARGS:
            if kwargs.get(name) is not None:
                value = kwargs[name]
                kwargs[name] = value.reshape(batch * groups, queries, *value.shape[2:])
        for name in _MEMORY_ARGS:
            if kwargs.get(name) is not None:
                kwargs[name] = kwargs[name].repeat_interleave(groups, 0)
        out = forward(**kwargs)
        out.last_hidden_state = out.last_hidden_state.reshape(batch, total, -1)
        layer_first = family == "detr"  # DETR stacks layers first, Deformable DETR after the batch
        for name in ("intermediate_hidden_states", "intermediate_reference_points"):
            value = getattr(out, name, None)
            if value is None:
                continue
            if layer_first:
                value = value.reshape(value.shape[0], batch, total, -1)
            else:
                value = value.reshape(batch, groups, *value.shape[1:])
                value = value.transpose(1, 2).reshape(batch, value.shape[2], total, -1)
            setattr(out, name, value)
        return out

    return run


def _grouped_loss(loss_function, groups: int):
    """transformers' loss, one-to-one matching inside each query group; the groups' mean."""

    def run(logits, labels, device, pred_boxes, config, outputs_class=None, outputs_coord=None, **kwargs):
        total, first = 0.0, None
        for g, (lo, bo) in enumerate(zip(logits.chunk(groups, 1), pred_boxes.chunk(groups, 1), strict=True)):
            aux_c = outputs_class.chunk(groups, 2)[g] if outputs_class is not None else None
            aux_b = outputs_coord.chunk(groups, 2)[g] if outputs_coord is not None else None
            loss, loss_dict, aux = loss_function(lo, labels, device, bo, config, aux_c, aux_b, **kwargs)
            total = total + loss / groups
            first = first or (loss_dict, aux)
        return total, first[0], first[1]

    return run


def install_query_groups(model: nn.Module, family: str, groups: int) -> None:
    """Group DETR: K x the query embeddings (group 0 = the model's own), matched group by group."""
    if groups == 1:
        return
    core = model.model
    own = core.query_position_embeddings.weight.data
    extra = torch.randn(groups - 1, *own.shape) * own.std()
    core.query_position_embeddings = nn.Embedding.from_pretrained(
        torch.cat([own, extra.flatten(0, 1)]), freeze=False
    )
    model.config.num_queries = own.shape[0] * groups
    core.decoder.forward = _grouped_decoder(core.decoder.forward, groups, family)
    model.loss_function = _grouped_loss(type(model).loss_function.fget(model), groups)


# --- the model being trained ------------------------------------------------------------------------


def trainable_batch_norms(model: nn.Module) -> None:
    """Swap transformers' frozen BatchNorms for trainable ones (in place).

    The frozen ones exist to keep ImageNet statistics; from scratch they are identities, and a backbone
    with no normalisation trains far slower. Both hold weight/bias/running_mean/running_var, so the
    trained statistics load back into the frozen layout unchanged (see `stock_model`).
    """
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child).__name__.endswith("FrozenBatchNorm2d"):
                setattr(module, child_name, nn.BatchNorm2d(child.weight.shape[0]))


def unfreeze_all(model: nn.Module) -> None:
    """Train every parameter.

    transformers' DETR backbone wrappers freeze each ResNet parameter whose name lacks `stage.1`,
    `stage.2` or `stage.3`, and transformers' own ResNet names its stages `encoder.stages.N`: left
    alone, the whole backbone would stay at its random initialisation.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(True)


def require_all_trained(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Refuse to start unless every parameter of the model requires grad and is in the optimizer."""
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    untrained = [
        name for name, p in model.named_parameters() if not p.requires_grad or id(p) not in optimized
    ]
    if untrained:
        raise SystemExit(
            f"refusing to train: {len(untrained)} parameters would stay at their initial values "
            f"(frozen or not optimised), e.g. {', '.join(untrained[:3])}"
        )


def init_deformable_heads(model: nn.Module) -> None:
    """Deformable DETR's own head initialisation: a 1 % prior on every class, boxes from the reference."""
    prior = -math.log((1 - 0.01) / 0.01)
    for head in model.class_embed:
        nn.init.constant_(head.bias, prior)
    for heads in (model.bbox_embed, model.model.decoder.bbox_embed):
        for head in heads or []:
            nn.init.zeros_(head.layers[-1].weight)
            nn.init.zeros_(head.layers[-1].bias)
        if heads is not None:
            nn.init.constant_(heads[0].layers[-1].bias[2:], -2.0)


def init_detr_like_its_paper(model: nn.Module) -> None:
    """facebookresearch/detr's initialisation, which transformers does not reproduce.

    transformers draws every Linear and Embedding from N(0, 0.02). DETR's transformer uses Xavier-uniform
    (about 4x larger at d_model 128) and nn.Embedding's N(0, 1) object queries (50x larger), its heads
    PyTorch's default Linear. From N(0, 0.02), every query attends alike and decodes alike: measured on
    detr-small after 5,900 detection steps, the class head still had its initial weight norm, the
    queries' embeddings a std of 0.056, and the loss sat on the "no object + average box" plateau.
    """
    core = model.model
    for part in (core.encoder, core.decoder):
        for parameter in part.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
    nn.init.normal_(core.query_position_embeddings.weight)
    for layer in (model.class_labels_classifier, *model.bbox_predictor.layers, core.input_projection):
        layer.reset_parameters()


def build_training_model(family: str, config: PretrainedConfig, groups: int) -> nn.Module:
    model = MODEL_CLASSES[family](config)
    if family == "detr":
        init_detr_like_its_paper(model)
    if family == "deformable-detr":
        init_deformable_heads(model)
    trainable_batch_norms(model)
    model.eval()  # the padding fix probes the backbone once; eval keeps BatchNorm statistics clean
    make_padding_invariant(model)
    install_query_groups(model, family, groups)
    unfreeze_all(model)
    return model.train()


def backbone_channels(model: nn.Module) -> list[int]:
    return list(model.model.backbone.intermediate_channel_sizes)


def parameter_groups(model: nn.Module, heads: nn.Module, lr: float) -> list[dict]:
    """x0.1 lr on Deformable DETR's sampling offsets and reference points, as in its paper."""
    slow, normal = [], []
    for name, parameter in model.named_parameters():
        (slow if "sampling_offsets" in name or "reference_points" in name else normal).append(parameter)
    normal += list(heads.parameters())
    return [{"params": normal, "lr_scale": 1.0}, {"params": slow, "lr_scale": 0.1}]


class WeightAverage:
    """Exponential moving average of every parameter and buffer (what the checkpoint holds)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.state[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.state[key].copy_(value)


def stock_model(state: dict, family: str, config: PretrainedConfig, groups: int) -> nn.Module:
    """The stock transformers model (frozen BatchNorms, group 0's queries) holding `state`."""
    config = copy.deepcopy(config)
    config.num_queries //= groups
    stock = MODEL_CLASSES[family](config)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    key = "model.query_position_embeddings.weight"
    state[key] = state[key][: config.num_queries]
    stock.load_state_dict(state, strict=True)
    return stock


# --- schedule, checkpoints, evaluation --------------------------------------------------------------


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Warm-up at the start of each phase, constant, then one x0.1 drop (DETR's schedule, compressed)."""
    if step < args.pretrain_steps:
        return args.pretrain_lr * min(1.0, (step + 1) / args.warmup)
    phase_start = args.pretrain_steps
    if step - phase_start < args.warmup:
        return args.lr * (step - phase_start + 1) / args.warmup
    return args.lr * (0.1 if step >= args.pretrain_steps + args.lr_drop else 1.0)


def write_model_folder(out: Path, stock: nn.Module, log_rows: list[dict]) -> None:
    with atomic_directory(out) as tmp:
        stock.save_pretrained(tmp)
        PREPROCESS.save(tmp / "preprocessor_config.json")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=sorted({k for row in log_rows for k in row}, key=_column))
        writer.writeheader()
        writer.writerows(log_rows)
        (tmp / "training_log.csv").write_text(buffer.getvalue())


def _column(name: str) -> tuple:
    order = ["step", "phase", "loss", "seg_loss", "lr", "seconds", "val_AP", "val_AP50"]
    return (order.index(name) if name in order else len(order), name)


def evaluate_folder(folder: Path, images: int) -> dict:
    """COCO metrics of the saved folder on the first `images` of shapes-val, as `gsmlp eval` computes."""
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.data.evaluate import coco_metrics, detect
    from gsmlp.model.loaders import load_detector

    detector = load_detector(folder)
    dataset = resolve_dataset("shapes-val")
    detections, _ = detect(detector, dataset, batch_size=8, limit=images, desc="mid-run eval")
    return coco_metrics(dataset, detections)


def state_path(args: argparse.Namespace) -> Path:
    return args.out.parent / f"{args.out.name}.state.pt"


def save_state(args, step, model, heads, encoder_head, optimizer, average, log_rows) -> None:
    state = {
        "step": step,
        "args": vars(args),
        "model": model.state_dict(),
        "heads": heads.state_dict(),
        "encoder_head": encoder_head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "average": average.state,
        "log_rows": log_rows,
    }
    with atomic_path(state_path(args)) as tmp:
        torch.save(state, tmp)


# --- the loop ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", required=True, choices=sorted(MODEL_CLASSES))
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced at each checkpoint)")
    parser.add_argument("--steps", type=int, default=12000, help="detection steps (default 12000)")
    parser.add_argument("--pretrain-steps", type=int, default=800, help="backbone pretraining steps")
    parser.add_argument(
        "--lr-drop", type=int, default=None, help="detection step of the x0.1 drop (default 85%%)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3, help="learning rate of the backbone phase")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps at the start of each phase")
    parser.add_argument("--groups", type=int, default=4, help="Group DETR query groups while training")
    parser.add_argument(
        "--seg-weight", type=float, default=1.0, help="weight of the auxiliary class-map loss"
    )
    parser.add_argument(
        "--encoder-seg-weight", type=float, default=0.0, help="weight of the class map read from the encoder"
    )
    parser.add_argument(
        "--scale-jitter",
        type=int,
        default=0,
        metavar="MIN",
        help="draw each batch's longer side from MIN..320 in steps of 32 (default: always 320)",
    )
    parser.add_argument(
        "--attention-guidance",
        type=float,
        default=0.0,
        help="DETR: weight of the loss that pulls each matched query's cross-attention onto its object",
    )
    parser.add_argument(
        "--ffn-sparsity",
        type=float,
        default=0.0,
        help="weight of the FFNs' effective fraction of active neurons (Hoyer measure of the ReLU outputs)",
    )
    parser.add_argument(
        "--ffn-block-sparsity",
        type=float,
        default=0.0,
        help="weight of the FFNs' effective fraction of active blocks of --ffn-block-size neurons "
        "(the blocks MGS skips; the Hoyer measure of the blocks' norms)",
    )
    parser.add_argument(
        "--ffn-block-size",
        type=int,
        default=DEFAULT_BLOCK_SIZE,
        help="neurons per block of --ffn-block-sparsity (default %(default)s, gsmlp calibrate's default)",
    )
    parser.add_argument("--ema", type=float, default=0.999, help="weight-average decay per step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=2000, help="mid-run eval on 100 shapes-val images")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=SPLITS["shapes-train"].seed, help="image stream seed")
    parser.add_argument(
        "--overfit-batch", action="store_true", help="repeat the first batch (a sanity check)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    args = parser.parse_args(argv)
    if args.lr_drop is None:
        args.lr_drop = int(0.85 * args.steps)
    if args.seed in {spec.seed for name, spec in SPLITS.items() if name != "shapes-train"}:
        parser.error(f"--seed {args.seed} is an evaluation split's seed; training must not see it")
    return args


@dataclass
class Trainer:
    args: argparse.Namespace
    model: nn.Module
    heads: SegmentationHeads
    encoder_head: EncoderClassHead
    guidance: AttentionGuidance | None
    sparsity: list[tuple[float, ActivationSparsity]]  # (weight, term)
    optimizer: torch.optim.Optimizer
    average: WeightAverage
    log_rows: list[dict]

    def step(self, step: int) -> tuple[float, float]:
        args = self.args
        first = 0 if args.overfit_batch else step * args.batch_size
        indices = list(range(first, first + args.batch_size))
        batch = training_batch(args.seed, indices, batch_preprocess(args, step))
        lr = learning_rate(step, args)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        core = self.model.model
        if step < args.pretrain_steps:
            features = [f for f, _ in core.backbone(batch.pixel_values, batch.pixel_mask)]
            seg = self.heads.loss(features, batch.class_maps)
            detection = seg.new_zeros(())
        else:
            captured = []
            handle = core.backbone.register_forward_hook(lambda _m, _i, out: captured.append(out))
            try:
                out = self.model(
                    pixel_values=batch.pixel_values, pixel_mask=batch.pixel_mask, labels=batch.labels
                )
            finally:
                handle.remove()
            features = [f for f, _ in captured[0]]
            seg = self.heads.loss(features, batch.class_maps)
            detection = out.loss
            if args.encoder_seg_weight:
                size = features[0].shape[-2:]
                memory = self.encoder_head.loss(out.encoder_last_hidden_state, size, batch.class_maps)
                detection = detection + args.encoder_seg_weight * memory
            if self.guidance is not None:
                guided = self.guidance.loss(out, batch.labels, batch.pixel_mask, features[-1].shape[-2:])
                detection = detection + args.attention_guidance * guided
            for weight, term in self.sparsity:
                detection = detection + weight * term.loss()
        loss = detection + args.seg_weight * seg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.1)
        self.optimizer.step()
        self.average.update(self.model, step)
        if not math.isfinite(loss.item()):
            raise SystemExit(f"loss became {loss.item()} at step {step}; lower --lr")
        return detection.item(), seg.item()


def make_trainer(args: argparse.Namespace, config: PretrainedConfig | None = None) -> tuple[Trainer, int]:
    """The model, heads, optimizer and weight average, restored from `<out>.state.pt` with --resume."""
    torch.manual_seed(0)
    model = build_training_model(args.family, config or small_config(args.family), args.groups)
    heads = SegmentationHeads(backbone_channels(model))
    encoder_head = EncoderClassHead(model.config.d_model)
    optimizer = torch.optim.AdamW(parameter_groups(model, heads, args.lr), lr=args.lr, weight_decay=1e-4)
    require_all_trained(model, optimizer)
    average = WeightAverage(model, args.ema)
    guidance = AttentionGuidance(model, args.groups) if args.attention_guidance else None
    sparsity = [
        (weight, ActivationSparsity(model, block_size))
        for weight, block_size in ((args.ffn_sparsity, 1), (args.ffn_block_sparsity, args.ffn_block_size))
        if weight
    ]
    trainer = Trainer(args, model, heads, encoder_head, guidance, sparsity, optimizer, average, [])
    if not args.resume:
        _add_encoder_head(optimizer, encoder_head)
        return trainer, 0
    path = state_path(args)
    if not path.is_file():
        raise SystemExit(f"--resume: no training state at {path}")
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    heads.load_state_dict(state["heads"])
    if len(state["optimizer"]["param_groups"]) == len(optimizer.param_groups):
        optimizer.load_state_dict(state["optimizer"])  # a state from before the encoder head existed
        _add_encoder_head(optimizer, encoder_head)
    else:
        _add_encoder_head(optimizer, encoder_head)
        optimizer.load_state_dict(state["optimizer"])
        encoder_head.load_state_dict(state["encoder_head"])
    average.state = state["average"]
    trainer.log_rows = state["log_rows"]
    return trainer, state["step"]


def _add_encoder_head(optimizer: torch.optim.Optimizer, head: EncoderClassHead) -> None:
    optimizer.add_param_group({"params": list(head.parameters()), "lr_scale": 1.0})


def batch_preprocess(args: argparse.Namespace, step: int) -> PreprocessConfig:
    """The shipped 320 px, or with --scale-jitter a longer side drawn per batch (DETR's multi-scale)."""
    if not args.scale_jitter:
        return PREPROCESS
    sides = list(range(args.scale_jitter, PREPROCESS.longest_edge + 1, 32))
    side = sides[int(np.random.default_rng([args.seed, step, 3]).integers(len(sides)))]
    return PreprocessConfig(shortest_edge=side, longest_edge=side)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer, start = make_trainer(args)
    total = args.pretrain_steps + args.steps
    running: list[tuple[float, float]] = []
    started = time.time() - (trainer.log_rows[-1]["seconds"] if trainer.log_rows else 0.0)
    for step in tqdm(range(start, total), desc=f"training {args.family}", unit="step", mininterval=10):
        running.append(trainer.step(step))
        done = step + 1
        if done % args.log_every == 0:
            row = {
                "step": done,
                "phase": "backbone" if step < args.pretrain_steps else "detection",
                "loss": round(float(np.mean([d for d, _ in running])), 5),
                "seg_loss": round(float(np.mean([s for _, s in running])), 5),
                "lr": learning_rate(step, args),
                "seconds": round(time.time() - started, 1),
            }
            trainer.log_rows.append(row)
            running = []
            print(json.dumps(row), flush=True)
        if done % args.save_every == 0 or done == total:
            stock = stock_model(trainer.average.state, args.family, trainer.model.config, args.groups)
            if done % args.eval_every == 0 and step >= args.pretrain_steps and trainer.log_rows:
                write_model_folder(args.out, stock, trainer.log_rows)
                metrics = evaluate_folder(args.out, 100)
                trainer.log_rows[-1].update(
                    val_AP=round(metrics["AP"], 2), val_AP50=round(metrics["AP50"], 2)
                )
                print(json.dumps({"step": done, "val100": metrics}), flush=True)
            write_model_folder(args.out, stock, trainer.log_rows)
            save_state(
                args,
                done,
                trainer.model,
                trainer.heads,
                trainer.encoder_head,
                trainer.optimizer,
                trainer.average,
                trainer.log_rows,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
