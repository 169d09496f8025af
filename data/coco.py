"""One dataset type for gsmlp: a COCO instances JSON plus its image folder, checked and explained.

`resolve_dataset("shapes-val")` generates the split on first use; `resolve_dataset("ann.json", "imgs/")`
reads any COCO-format dataset. Problems that make evaluation meaningless raise GsmlpError naming the file,
key or value at fault; images that are listed but absent or unreadable are skipped, counted and named.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image
from pycocotools.coco import COCO

from gsmlp.data.shapes import SPLITS, ensure_split
from gsmlp.errors import GsmlpError
from gsmlp.model.pixels import UnusableImage, read_rgb
from gsmlp.paths import (
    escapes,
    kind_of,
    read_regular_bytes,
    relative_name_problem,
    require_file,
    require_folder,
)

REQUIRED_KEYS = {
    "images": ("id", "file_name"),
    "annotations": ("image_id", "category_id", "bbox"),
    "categories": ("id",),
}
MAX_NAMED = 5  # how many offending file names a message lists before "and N more"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def read_annotations(path: Path) -> dict:
    """The parsed JSON, checked in full: every field pycocotools reads, boxes, ids, image sizes.

    Missing optional fields get COCO's defaults, with a warning: `area` = box width x height, `iscrowd` = 0,
    annotation `id` = unused integers; an absent `info` is added (pycocotools needs it to load results).
    """
    path = require_file(path, "annotations file")
    try:
        document = json.loads(read_regular_bytes(path, "annotations file"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise GsmlpError(f"annotations file {path} is corrupt: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise GsmlpError(
            f"annotations file {path} must hold a JSON object with images/annotations/categories"
        )
    for key, fields in REQUIRED_KEYS.items():
        entries = document.get(key)
        if not isinstance(entries, list):
            raise GsmlpError(f"annotations file {path} has no {key!r} list (a COCO instances file needs one)")
        for index, entry in enumerate(entries):
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise GsmlpError(f"{path}: {key}[{index}] lacks the key(s) {', '.join(missing)}")
    if not document["images"]:
        raise GsmlpError(f"annotations file {path} lists no images")
    _check_images(path, document["images"])
    _unique_ids(path, "categories", document["categories"])
    _check_annotations(path, document)
    if "info" not in document:
        # pycocotools' loadRes copies dataset["info"] and fails with a bare KeyError without it.
        _warn(f"{path} has no 'info' key; using an empty one (pycocotools needs it to load results)")
        document["info"] = {}
    return document


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unique_ids(path: Path, key: str, entries: list[dict]) -> set[int]:
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        value = entry["id"]
        if not _is_int(value):
            raise GsmlpError(f"{path}: {key}[{index}] has id {value!r}; ids must be integers")
        if value in seen:
            raise GsmlpError(f"{path}: {key}[{index}] repeats id {value}; ids must be unique")
        seen.add(value)
    return seen


def _check_images(path: Path, images: list[dict]) -> None:
    _unique_ids(path, "images", images)
    for index, image in enumerate(images):
        where = f"{path}: images[{index}] (id {image['id']})"
        name = image["file_name"]
        if not isinstance(name, str) or not name.strip():
            raise GsmlpError(f"{where} has file_name {name!r}; it must name an image file")
        problem = relative_name_problem(name)
        if problem:
            raise GsmlpError(
                f"{where} has file_name {name!r}: {problem}; a file_name is a path relative to the image "
                "folder (--images), and gsmlp reads nothing outside it"
            )
        for key in ("width", "height"):
            if key in image and not (_is_int(image[key]) and image[key] > 0):
                raise GsmlpError(f"{where} has {key} {image[key]!r}; it must be a positive integer")


def _check_box(where: str, box: object) -> tuple[float, float]:
    """A COCO box [x, y, width, height]: four finite numbers, width and height not negative."""
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise GsmlpError(f"{where} has bbox {box!r}; a box is four finite numbers [x, y, width, height]")
    if box[2] < 0 or box[3] < 0:
        raise GsmlpError(f"{where} has bbox {box!r}; its width and height must not be negative")
    return float(box[2]), float(box[3])


def _check_annotations(path: Path, document: dict) -> None:
    categories = {c["id"] for c in document["categories"]}
    images = {img["id"] for img in document["images"]}
    annotations = document["annotations"]
    given_ids = [a["id"] for a in annotations if "id" in a]
    _unique_ids(path, "annotations", [a for a in annotations if "id" in a])
    next_id = max(given_ids, default=0) + 1
    defaulted = {"id": 0, "area": 0, "iscrowd": 0}
    for index, ann in enumerate(annotations):
        where = f"{path}: annotations[{index}] (id {ann.get('id', '?')})"
        if not _is_int(ann["category_id"]) or ann["category_id"] not in categories:
            raise GsmlpError(
                f"{where} has category_id {ann['category_id']!r}, which is not among the file's categories"
            )
        if not _is_int(ann["image_id"]) or ann["image_id"] not in images:
            raise GsmlpError(f"{where} refers to image_id {ann['image_id']!r}, which is not in 'images'")
        width, height = _check_box(where, ann["bbox"])
        if "id" not in ann:
            ann["id"], next_id = next_id, next_id + 1
            defaulted["id"] += 1
        if "area" not in ann:
            ann["area"] = width * height
            defaulted["area"] += 1
        elif not (_is_number(ann["area"]) and ann["area"] >= 0):
            raise GsmlpError(f"{where} has area {ann['area']!r}; it must be a finite number >= 0")
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            defaulted["iscrowd"] += 1
        elif ann["iscrowd"] not in (0, 1):  # True and False compare equal to 1 and 0
            raise GsmlpError(f"{where} has iscrowd {ann['iscrowd']!r}; it must be 0 or 1")
    defaults = {"id": "unused integer ids", "area": "COCO's default, box width x height", "iscrowd": "0"}
    for key, count in defaulted.items():
        if count:
            _warn(f"{path}: {count} of {len(annotations)} annotations lack {key!r}; using {defaults[key]}")


def quiet_coco(document: dict) -> COCO:
    """A pycocotools index of an already-parsed document, without its progress prints."""
    coco = COCO()
    coco.dataset = document
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@dataclass
class CocoDataset:
    """A checked COCO dataset. `image_ids`: the listed images present in the folder, in id order."""

    name: str
    annotation_file: Path
    image_dir: Path
    coco: COCO
    image_ids: list[int]
    unreadable: list[str] = field(default_factory=list)
    # Listed in the annotations but absent from the folder: skipped, and counted in validate's report.
    missing: list[str] = field(default_factory=list)
    # Present, but known unusable before decoding (a link out of the folder, a FIFO): id -> why.
    problems: dict[int, str] = field(default_factory=dict)

    @property
    def category_ids(self) -> list[int]:
        return sorted(self.coco.cats)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.coco.imgs[image_id]["file_name"]

    def iterate(self, limit: int | None = None) -> Iterator[tuple[int, Image.Image]]:
        """(image_id, RGB image) in id order; images that cannot be used are skipped, named and counted."""
        ids = self.image_ids if limit is None else self.image_ids[:limit]
        for image_id in ids:
            path = self.image_path(image_id)
            rgb, problem = self._decode(image_id, path)
            if problem is not None:
                if path.name not in self.unreadable:
                    self.unreadable.append(path.name)
                    _warn(f"skipping unreadable image {path}: {problem}")
                continue
            yield image_id, rgb

    def _decode(self, image_id: int, path: Path) -> tuple[Image.Image | None, str | None]:
        """The RGB image, or why it cannot be used: any decoder failure, or a size that is not the one
        the annotations give (their boxes would then be in another image's coordinates)."""
        if image_id in self.problems:
            return None, self.problems[image_id]
        try:
            rgb = read_rgb(path)
        except (GsmlpError, UnusableImage) as exc:
            return None, str(exc)
        except Exception as exc:  # pillow raises many types for damaged files; each one only skips the image
            return None, f"corrupt or not an image ({type(exc).__name__}: {exc})"
        entry = self.coco.imgs[image_id]
        listed = (entry.get("width"), entry.get("height"))
        if None not in listed and listed != rgb.size:
            return None, (
                f"it is {rgb.size[0]}x{rgb.size[1]} pixels, but {self.annotation_file} gives "
                f"{listed[0]}x{listed[1]} for image id {image_id}"
            )
        return rgb, None

    def subset(self, image_ids: list[int]) -> CocoDataset:
        """The same dataset restricted to `image_ids` (a rank's shard), with its own skip records; the
        annotations stay whole, so the images' ground truth is the full dataset's."""
        return replace(self, image_ids=list(image_ids), unreadable=[])

    def usable_images_error(self, limit: int | None = None) -> GsmlpError:
        """The error for a run that found no image it could use: what was tried and why each failed."""
        tried = self.count(limit)
        parts = []
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable ({_named(self.unreadable)})")
        if self.missing:
            parts.append(
                f"{len(self.missing)} listed but absent from {self.image_dir} ({_named(self.missing)})"
            )
        why = "; ".join(parts) or "no image listed"
        return GsmlpError(
            f"no image of {self.name} could be used ({tried} tried): {why}; nothing was measured"
        )

    def __iter__(self) -> Iterator[tuple[int, Image.Image]]:
        return self.iterate()

    def count(self, limit: int | None = None) -> int:
        """How many images `iterate(limit)` visits (unreadable ones included)."""
        return len(self) if limit is None else min(limit, len(self))

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[list[tuple[int, Image.Image]]]:
        """`iterate(limit)` in lists of at most `batch_size` (image_id, image) pairs."""
        chunk: list[tuple[int, Image.Image]] = []
        for pair in self.iterate(limit):
            chunk.append(pair)
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def load_coco_dataset(annotation_file: Path, image_dir: Path, name: str | None = None) -> CocoDataset:
    document = read_annotations(annotation_file)
    require_folder(image_dir, "image folder")
    if not any(image_dir.iterdir()):
        raise GsmlpError(f"image folder {image_dir} is empty; it should hold the images of {annotation_file}")
    listed = sorted(document["images"], key=lambda img: img["id"])
    problems = {img["id"]: why for img in listed if (why := _unusable(image_dir, img["file_name"]))}
    present = [img for img in listed if img["id"] in problems or (image_dir / img["file_name"]).is_file()]
    present_ids = {img["id"] for img in present}
    missing = [img["file_name"] for img in listed if img["id"] not in present_ids]
    if len(missing) == len(listed) and listed:
        raise GsmlpError(
            f"none of the {len(listed)} images listed in {annotation_file} is in {image_dir} "
            f"(for example {listed[0]['file_name']}); is --images the right folder?"
        )
    if missing:
        _warn(
            f"{len(missing)} images listed in {annotation_file} are not in {image_dir}, "
            f"skipped: {_named(missing)}"
        )
    ids = [img["id"] for img in present]
    return CocoDataset(
        name or str(annotation_file), annotation_file, image_dir, quiet_coco(document), ids, missing=missing,
        problems=problems,
    )  # fmt: skip


def _unusable(image_dir: Path, name: str) -> str | None:
    """Why a listed image that is there cannot be read, before anything opens it: a symbolic link that
    leads out of the image folder (gsmlp reads only what --images holds), or not a regular file."""
    path = image_dir / name
    if not os.path.lexists(path):
        return None
    outside = escapes(image_dir, path)
    if outside is not None:
        return f"it links to {outside}, outside the image folder {image_dir}; gsmlp reads only what it holds"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if stat.S_ISREG(mode) else f"it is {kind_of(mode)}, not a regular file"


def resolve_dataset(data: str, images: str | None = None) -> CocoDataset:
    """`shapes-train` / `shapes-val` (generated on first use), or a COCO JSON path with its image folder."""
    if data in SPLITS:
        if images is not None:
            raise GsmlpError(f"--images is only for a JSON --data; {data} brings its own images")
        folder = ensure_split(data)
        return load_coco_dataset(folder / "annotations.json", folder / "images", name=data)
    path = Path(data)
    if not path.exists():
        raise GsmlpError(
            f"--data {data}: no such file, and not a generated split ({', '.join(SPLITS)}); "
            "give a split name or a COCO instances JSON with --images DIR"
        )
    if path.is_dir():
        raise GsmlpError(
            f"--data {data} is a folder; give the COCO instances JSON file inside it and --images DIR"
        )
    if images is None:
        raise GsmlpError(f"--data {data} is a JSON file: also give --images DIR, the folder of its images")
    return load_coco_dataset(path, Path(images))
