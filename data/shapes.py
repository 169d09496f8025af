"""`shapes`: a generated COCO-format detection dataset, so gsmlp trains and evaluates with no download.

Ten classes that differ in form (not only colour), drawn at random size, rotation and colour on
textured, noisy backgrounds of varied size and aspect ratio, with partial occlusion. Each box covers
the visible part of its object; objects hidden past `MIN_VISIBLE` are dropped from the annotations.
Every image has its own seed (split seed + index), so any image can be regenerated alone and a split
is reproducible byte for byte with the same Pillow and NumPy.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_directory

CATEGORIES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "diamond",
    "arrow",
    "crescent",
)
MIN_SIDE, MAX_SIDE = 160, 320
MAX_OBJECTS = 10
MIN_VISIBLE = 0.45  # fraction of an object's own pixels that must stay visible to be annotated
JPEG_QUALITY = 92


@dataclass(frozen=True)
class SplitSpec:
    name: str
    num_images: int
    seed: int


SPLITS: dict[str, SplitSpec] = {
    "shapes-train": SplitSpec("shapes-train", 4000, seed=1),
    "shapes-val": SplitSpec("shapes-val", 400, seed=2),
    # Never used for choices while training: the check that shapes-val scores carry to unseen images.
    "shapes-test": SplitSpec("shapes-test", 400, seed=3),
}


def cache_root() -> Path:
    """$GSMLP_CACHE, else ~/.cache/gsmlp/datasets."""
    env = os.environ.get("GSMLP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "gsmlp" / "datasets"


# --- shape outlines: each returns polygons (lists of (x, y)) in a unit frame centred on 0 ------------


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star() -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.42
        angle = -math.pi / 2 + math.pi * k / 5
        points.append((r * math.cos(angle), r * math.sin(angle)))
    return points


_CROSS = [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1)]
_CROSS += [(-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]
_ARROW = [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)]
_DIAMOND = [(0, -1), (0.55, 0), (0, 1), (-0.55, 0)]


def _rotate_scale(points, angle: float, scale: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in points]


def _draw_shape(mask: Image.Image, name: str, cx: float, cy: float, size: float, angle: float) -> None:
    """Draw one filled shape (value 255) of half-extent `size` into an L-mode mask."""
    draw = ImageDraw.Draw(mask)
    r = size
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        inner = 0.55 * r
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif name == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        dx, dy = 0.5 * r * math.cos(angle), 0.5 * r * math.sin(angle)
        draw.ellipse([cx + dx - 0.85 * r, cy + dy - 0.85 * r, cx + dx + 0.85 * r, cy + dy + 0.85 * r], fill=0)
    else:
        outline = {
            "square": _regular(4, 1.0, math.pi / 4),
            "triangle": _regular(3, 1.0, -math.pi / 2),
            "star": _star(),
            "cross": _CROSS,
            "hexagon": _regular(6),
            "diamond": _DIAMOND,
            "arrow": _ARROW,
        }[name]
        draw.polygon(_rotate_scale(outline, angle, r, cx, cy), fill=255)


# --- backgrounds ------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-frequency colour blobs + optional stripes + pixel noise, as float32 HxWx3 in 0..255."""
    grid = rng.uniform(40, 215, size=(rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.float32)
    blobs = np.asarray(
        Image.fromarray(grid.astype(np.uint8)).resize((width, height), Image.BILINEAR), dtype=np.float32
    )
    if rng.random() < 0.5:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 30)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period)
        blobs += rng.uniform(8, 30) * np.sin(phase)[..., None]
    noise = rng.normal(0, rng.uniform(4, 18), size=(height, width, 1)).astype(np.float32)
    return blobs + noise


def _object_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


# --- one image ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedImage:
    image: Image.Image
    annotations: list[dict]  # [{category_id, bbox, area}], visible boxes only
    class_map: np.ndarray  # [H, W] uint8: the category id that each pixel shows, 0 for background


def render_image(seed: int, index: int) -> RenderedImage:
    """Render image `index` of the split with seed `seed`, with the class of every pixel."""
    rng = np.random.default_rng([seed, index])
    width, height = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
    canvas = _background(rng, width, height)
    owner = np.full((height, width), -1, dtype=np.int16)  # which object a pixel shows (-1: background)
    class_map = np.zeros((height, width), dtype=np.uint8)
    objects = []
    for k in range(int(rng.integers(0, MAX_OBJECTS + 1))):
        category = int(rng.integers(len(CATEGORIES)))
        size = float(rng.uniform(8, 0.22 * min(width, height)))
        cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        mask_img = Image.new("L", (width, height), 0)
        _draw_shape(mask_img, CATEGORIES[category], cx, cy, size, float(rng.uniform(0, 2 * math.pi)))
        mask = np.asarray(mask_img) > 127
        own_area = int(mask.sum())
        if own_area < 30:  # mostly outside the image
            continue
        shade = rng.uniform(0.85, 1.15, size=(height, width, 1)).astype(np.float32)
        canvas[mask] = (_object_colour(rng) * shade[mask]).clip(0, 255)
        owner[mask] = k
        class_map[mask] = category + 1
        objects.append((k, category, own_area))
    annotations = []
    for k, category, own_area in objects:
        visible = owner == k
        area = int(visible.sum())
        if area < MIN_VISIBLE * own_area:
            continue
        ys, xs = np.nonzero(visible)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        annotations.append({"category_id": category + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area})
    noise = rng.normal(0, 3, size=canvas.shape).astype(np.float32)
    image = Image.fromarray((canvas + noise).clip(0, 255).astype(np.uint8), "RGB")
    return RenderedImage(image, annotations, class_map)


def generate_image(seed: int, index: int) -> tuple[Image.Image, list[dict]]:
    """Render image `index` of the split with seed `seed`: (RGB image, [{category_id, bbox, area}])."""
    rendered = render_image(seed, index)
    return rendered.image, rendered.annotations


# --- a whole split ------------------------------------------------------------------------------------


def _coco_document(spec: SplitSpec, images: list[dict], annotations: list[dict]) -> dict:
    return {
        "info": {
            "description": f"gsmlp generated shapes dataset, split {spec.name}",
            "version": "1",
            "seed": spec.seed,
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)
        ],
    }


def write_split(spec: SplitSpec, target: Path, show_progress: bool = True) -> None:
    """Generate the split into `target`; the folder appears whole or not at all."""
    with atomic_directory(target) as tmp:
        (tmp / "images").mkdir()
        images, annotations = [], []
        for index in tqdm(
            range(spec.num_images), desc=f"generating {spec.name}", unit="img", disable=not show_progress
        ):
            image, objects = generate_image(spec.seed, index)
            image_id = index + 1
            file_name = f"{image_id:06d}.jpg"
            image.save(tmp / "images" / file_name, quality=JPEG_QUALITY)
            images.append(
                {"id": image_id, "file_name": file_name, "width": image.width, "height": image.height}
            )
            for obj in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
        document = _coco_document(spec, images, annotations)
        (tmp / "annotations.json").write_text(json.dumps(document))


def ensure_split(name: str, root: Path | None = None) -> Path:
    """The folder of split `name` ({images/, annotations.json}), generated on first use."""
    if name not in SPLITS:
        raise GsmlpError(f"unknown generated dataset {name!r}: choose one of {', '.join(SPLITS)}")
    folder = (root or cache_root()) / name
    if not (folder / "annotations.json").is_file():
        write_split(SPLITS[name], folder)
    return folder
