"""Train the built-in small DETR or Deformable DETR on the generated `shapes-train` split.

    python scripts/train_small.py --family detr --out runs/detr-small --steps 8000
    python scripts/train_small.py --family deformable-detr --out runs/deformable-detr-small --steps 6000

Writes a Hugging Face folder (config.json, model.safetensors, preprocessor_config.json) plus the loss
curve (training_log.csv), replaced whole at every checkpoint so that an interrupted run leaves the last
complete one. Seeded: the same command on the same software gives the same curve.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import (
    DeformableDetrConfig,
    DeformableDetrForObjectDetection,
    DetrConfig,
    DetrForObjectDetection,
    PretrainedConfig,
)

from gsmlp.data.shapes import CATEGORIES, ensure_split
from gsmlp.io import atomic_directory
from gsmlp.model.configs import _common, _resnet

IMAGE_MEAN = [0.485, 0.456, 0.406]
IMAGE_STD = [0.229, 0.224, 0.225]
NUM_LABELS = len(CATEGORIES) + 1  # class index == category id (1..K); index 0 is never a target


def small_config(family: str) -> PretrainedConfig:
    """The shipped small layouts; FFN hidden/d_model keeps the real ratio (8x DETR, 4x Deformable)."""
    shared = dict(
        d_model=128,
        encoder_layers=3,
        decoder_layers=3,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        num_labels=NUM_LABELS,
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
        )
    raise SystemExit(f"unknown family {family!r}: choose detr or deformable-detr")


MODEL_CLASSES = {"detr": DetrForObjectDetection, "deformable-detr": DeformableDetrForObjectDetection}


class ShapesTrainingSet:
    """Images resized as the preprocessor config says, with DETR targets (cxcywh, normalised)."""

    def __init__(self, folder: Path, shortest: int, longest: int) -> None:
        document = json.loads((folder / "annotations.json").read_text())
        self.folder = folder
        self.images = document["images"]
        self.boxes: dict[int, list] = {img["id"]: [] for img in self.images}
        for ann in document["annotations"]:
            self.boxes[ann["image_id"]].append((ann["category_id"], ann["bbox"]))
        self.shortest, self.longest = shortest, longest

    def __len__(self) -> int:
        return len(self.images)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        scale = self.shortest / min(width, height)
        if max(width, height) * scale > self.longest:
            scale = self.longest / max(width, height)
        return round(width * scale), round(height * scale)

    def item(self, index: int, flip: bool) -> tuple[torch.Tensor, dict]:
        record = self.images[index]
        image = Image.open(self.folder / "images" / record["file_name"]).convert("RGB")
        width, height = image.size
        image = image.resize(self.resized_size(width, height), Image.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        pixels = (pixels - torch.tensor(IMAGE_MEAN)[:, None, None]) / torch.tensor(IMAGE_STD)[:, None, None]
        labels, boxes = [], []
        for category, (x, y, w, h) in self.boxes[record["id"]]:
            cx = (x + w / 2) / width
            labels.append(category)
            boxes.append([1 - cx if flip else cx, (y + h / 2) / height, w / width, h / height])
        if flip:
            pixels = pixels.flip(-1)
        target = {
            "class_labels": torch.tensor(labels, dtype=torch.long),
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        }
        return pixels, target


def collate(items: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    height = max(p.shape[1] for p, _ in items)
    width = max(p.shape[2] for p, _ in items)
    pixel_values = torch.zeros(len(items), 3, height, width)
    pixel_mask = torch.zeros(len(items), height, width, dtype=torch.long)
    for i, (pixels, _) in enumerate(items):
        pixel_values[i, :, : pixels.shape[1], : pixels.shape[2]] = pixels
        pixel_mask[i, : pixels.shape[1], : pixels.shape[2]] = 1
    return pixel_values, pixel_mask, [t for _, t in items]


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then constant, then one x0.1 drop (DETR's schedule, compressed)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (0.1 if step >= args.lr_drop else 1.0)


def trainable_batch_norms(model: torch.nn.Module) -> None:
    """Swap transformers' frozen BatchNorms for trainable ones (in place).

    The frozen ones exist to keep ImageNet statistics; from scratch they are identities, and a backbone
    with no normalisation trains far slower. Both hold weight/bias/running_mean/running_var, so the
    trained statistics load back into the frozen layout unchanged (see `frozen_copy`).
    """
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child).__name__.endswith("FrozenBatchNorm2d"):
                setattr(module, child_name, torch.nn.BatchNorm2d(child.weight.shape[0]))


def frozen_copy(model: torch.nn.Module, family: str) -> torch.nn.Module:
    """The stock transformers model (frozen BatchNorms) holding the trained weights and statistics."""
    stock = MODEL_CLASSES[family](model.config)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    stock.load_state_dict(state, strict=True)
    return stock


def save_checkpoint(model, args: argparse.Namespace, log_rows: list[dict]) -> None:
    with atomic_directory(args.out) as tmp:
        frozen_copy(model, args.family).save_pretrained(tmp)
        preprocessor = {
            "size": {"shortest_edge": args.shortest_edge, "longest_edge": args.longest_edge},
            "image_mean": IMAGE_MEAN,
            "image_std": IMAGE_STD,
        }
        (tmp / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(log_rows[0]))
        writer.writeheader()
        writer.writerows(log_rows)
        (tmp / "training_log.csv").write_text(buffer.getvalue())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", required=True, choices=sorted(MODEL_CLASSES))
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced at each checkpoint)")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--lr-drop", type=int, default=None, help="step of the x0.1 drop (default: 80%%)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--shortest-edge", type=int, default=160)
    parser.add_argument("--longest-edge", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.lr_drop is None:
        args.lr_drop = int(0.8 * args.steps)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset = ShapesTrainingSet(ensure_split("shapes-train"), args.shortest_edge, args.longest_edge)
    model = MODEL_CLASSES[args.family](small_config(args.family))
    trainable_batch_norms(model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    log_rows: list[dict] = []
    order = np.array([], dtype=np.int64)
    running, started = [], time.time()
    for step in tqdm(range(args.steps), desc=f"training {args.family}", unit="step", mininterval=5):
        if len(order) < args.batch_size:
            order = np.concatenate([order, rng.permutation(len(dataset))])
        batch_indices, order = order[: args.batch_size], order[args.batch_size :]
        items = [dataset.item(int(i), flip=bool(rng.random() < 0.5)) for i in batch_indices]
        pixel_values, pixel_mask, labels = collate(items)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        loss = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        if not math.isfinite(loss.item()):
            raise SystemExit(f"loss became {loss.item()} at step {step}; lower --lr")
        running.append(loss.item())
        if (step + 1) % args.log_every == 0:
            row = {
                "step": step + 1,
                "loss": round(float(np.mean(running)), 5),
                "lr": learning_rate(step, args),
                "seconds": round(time.time() - started, 1),
            }
            log_rows.append(row)
            running = []
            print(json.dumps(row), flush=True)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save_checkpoint(model, args, log_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
