"""Detections drawn on their image: a box per detection, its label name and score above it (pillow only).

One drawing for every picture gsmlp makes: `gsmlp detect`'s PNGs and the demo report's side-by-side view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gsmlp.io import atomic_path

if TYPE_CHECKING:
    from pathlib import Path

    from PIL.Image import Image

    from gsmlp.model.decoding import Detections

# Distinct, saturated colours that stay readable on photographs and on the shapes images alike.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
)  # fmt: skip


def _font(size: int) -> Any:  # a pillow FreeTypeFont
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _text_colour(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light label backgrounds, white on dark ones."""
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def draw_detections(image: Image, detections: Detections, label_name: Callable[[int], str]) -> Image:
    """A copy of `image` (RGB) with each detection's box and "name 0.93" drawn on it, best score on top."""
    from PIL import ImageDraw

    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    scale = max(canvas.width, canvas.height)
    line = max(2, round(scale / 250))
    font = _font(max(11, round(scale / 40)))
    # Drawn lowest score first, so that the most confident box and label end up on top.
    for index in reversed(range(len(detections.scores))):
        x0, y0, x1, y1 = (float(v) for v in detections.boxes[index])
        x0, x1 = sorted((max(0.0, x0), min(canvas.width - 1.0, x1)))
        y0, y1 = sorted((max(0.0, y0), min(canvas.height - 1.0, y1)))
        label = int(detections.labels[index])
        colour = PALETTE[label % len(PALETTE)]
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = f"{label_name(label)} {float(detections.scores[index]):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        height = bottom - top + 2 * line
        # Above the box where there is room, else just inside its top edge.
        ty = y0 - height if y0 - height >= 0 else y0
        tx = min(x0, max(0.0, canvas.width - (right - left) - 2 * line))
        draw.rectangle((tx, ty, tx + right - left + 2 * line, ty + height), fill=colour)
        draw.text((tx + line, ty + line - top), text, fill=_text_colour(colour), font=font)
    return canvas


def side_by_side(panels: Sequence[tuple[str, Image]], gap: int = 12) -> Image:
    """The pictures in one row, each with its title above it, on white."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    font = _font(max(14, round(max(p.height for _, p in panels) / 22)))
    title_height = font.getbbox("Ag")[3] + gap
    width = sum(p.width for _, p in panels) + gap * (len(panels) + 1)
    height = max(p.height for _, p in panels) + title_height + 2 * gap
    sheet = PILImage.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = gap
    for title, picture in panels:
        draw.text((x, gap // 2), title, fill=(0, 0, 0), font=font)
        sheet.paste(picture.convert("RGB"), (x, title_height + gap))
        x += picture.width + gap
    return sheet


def save_png(picture: Image, path: str | Path) -> None:
    """Write the picture as PNG, atomically."""
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
