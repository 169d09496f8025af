"""One dataset type for gsmlp: a COCO instances JSON plus its image folder, checked and explained.

`resolve_dataset("shapes-val")` generates the split on first use; `resolve_dataset("ann.json", "imgs/")`
reads any COCO-format dataset. Problems that make evaluation meaningless raise GsmlpError naming the file,
key or value at fault; images that are listed but absent or unreadable are skipped, counted and named.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pycocotools.coco import COCO

from gsmlp.data.shapes import SPLITS, ensure_split
from gsmlp.errors import GsmlpError

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
    """The parsed JSON, with its structure checked; an absent `info` is added (pycocotools needs it)."""
    if not path.is_file():
        raise GsmlpError(f"annotations file {path} does not exist")
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise GsmlpError(f"cannot read annotations file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GsmlpError(f"annotations file {path} is not valid JSON: {exc}") from None
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
    _check_categories(path, document)
    if "info" not in document:
        # pycocotools' loadRes copies dataset["info"] and fails with a bare KeyError without it.
        _warn(f"{path} has no 'info' key; using an empty one (pycocotools needs it to load results)")
        document["info"] = {}
    return document


def _check_categories(path: Path, document: dict) -> None:
    known = {c["id"] for c in document["categories"]}
    images = {img["id"] for img in document["images"]}
    for ann in document["annotations"]:
        if ann["category_id"] not in known:
            raise GsmlpError(
                f"{path}: annotation {ann.get('id', '?')} has category_id {ann['category_id']}, "
                f"which is not among the file's categories"
            )
        if ann["image_id"] not in images:
            raise GsmlpError(
                f"{path}: annotation {ann.get('id', '?')} refers to image_id {ann['image_id']}, "
                "which is not in 'images'"
            )


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

    @property
    def category_ids(self) -> list[int]:
        return sorted(self.coco.cats)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.coco.imgs[image_id]["file_name"]

    def iterate(self, limit: int | None = None) -> Iterator[tuple[int, Image.Image]]:
        """(image_id, RGB image) in id order; unreadable files are skipped, named and counted."""
        ids = self.image_ids if limit is None else self.image_ids[:limit]
        for image_id in ids:
            path = self.image_path(image_id)
            try:
                with Image.open(path) as image:
                    rgb = image.convert("RGB")
            except (OSError, UnidentifiedImageError, SyntaxError) as exc:
                self.unreadable.append(path.name)
                _warn(f"skipping unreadable image {path}: {exc}")
                continue
            yield image_id, rgb

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
    if not image_dir.is_dir():
        raise GsmlpError(f"image folder {image_dir} does not exist (given for {annotation_file})")
    if not any(image_dir.iterdir()):
        raise GsmlpError(f"image folder {image_dir} is empty; it should hold the images of {annotation_file}")
    listed = sorted(document["images"], key=lambda img: img["id"])
    present = [img for img in listed if (image_dir / img["file_name"]).is_file()]
    missing = [img["file_name"] for img in listed if not (image_dir / img["file_name"]).is_file()]
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
        name or str(annotation_file), annotation_file, image_dir, quiet_coco(document), ids, missing=missing
    )


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
