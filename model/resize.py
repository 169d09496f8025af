"""DETR's resize rule and normalisation constants, without torch: the deploy-time runtime shares them."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The largest image side gsmlp resizes or exports to: beyond it a typo asks for more memory than a machine
# has (DETR's encoder attention over the tokens of an 8192 x 8192 canvas alone needs 17 GB).
MAX_EDGE = 8192
# The most images one batch (an option, or a static ONNX input) may hold, for the same reason.
MAX_BATCH = 256


def resized_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """DETR's rule: shortest side to `shortest_edge`, unless the longest side would exceed `longest_edge`.

    As in facebookresearch/detr, the capped short side is rounded and the long side truncated, so the
    long side can end a pixel or two above `longest_edge`; matching it keeps published checkpoints exact.
    A strip so thin that its short side rounds to 0 (3000 x 1 at longest edge 1333) gets a short side of
    1 pixel and a long side of `longest_edge`: the model takes it, and the bound on the long side holds.
    """
    short, long = min(height, width), max(height, width)
    target = shortest_edge
    if long / short * target > longest_edge:
        target = int(round(longest_edge * short / long))
    if target < 1:
        return (1, longest_edge) if height <= width else (longest_edge, 1)
    if height <= width:
        return target, int(target * width / height)
    return int(target * height / width), target
