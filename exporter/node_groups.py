"""The groups of an exported Deformable DETR graph's nodes, by the module that traced them.

The tracer names each node by its module path ('/detector/model/encoder/layers.0/self_attn/.../MatMul');
`node_group` maps that to a group such as 'encoder.sampling_offsets' or 'decoder.reference_points'. The fp16
conversion keeps `COORDINATE_GROUPS` float32 in Deformable files, and benchmarks/fp16_error.py measures
each group's share of the fp16 error (docs/VALIDATION.md, "fp16: where the Deformable error comes from").
"""

from __future__ import annotations

import re

import onnx

LAYER = re.compile(r"^layers\.\d+$")
# Inside a deformable attention block: its sub-modules; any other node of the block is the sampling-location
# arithmetic (offsets / normaliser + reference points, or the box form) and the reshapes around it.
ATTENTION_PARTS = ("sampling_offsets", "attention_weights", "value_proj", "output_proj", "attn")


def node_group(name: str) -> str:
    """'/detector/model/encoder/layers.0/self_attn/sampling_offsets/MatMul' -> 'encoder.sampling_offsets'."""
    parts = name.strip("/").split("/")[1:-1]  # the module path, without the trace root and the op name
    if not parts or parts[0] != "model":
        return "heads"  # class_embed, bbox_embed and the output glue
    if len(parts) == 1:
        return "model.glue"  # masks, flattening, level embeddings, valid ratios
    if parts[1] in ("encoder", "decoder"):
        stack, rest = parts[1], parts[2:]
        if not rest or not LAYER.match(rest[0]):
            return f"{stack}.reference_points" if not rest else f"{stack}.{rest[0].split('.')[0]}"
        rest = rest[1:]
        if not rest:
            return f"{stack}.residuals"
        deformable = "self_attn" if stack == "encoder" else "encoder_attn"
        if rest[0] == deformable:
            part = rest[1] if len(rest) > 1 and rest[1] in ATTENTION_PARTS else "sampling_locations"
            return f"{stack}.{'sampling' if part == 'attn' else part}"
        return f"{stack}.{rest[0]}"
    return f"model.{parts[1].split('.')[0]}"


# The arithmetic that makes sampling positions: valid ratios and masks (model.glue), the encoder's and the
# decoder's reference points, and each block's offsets / normaliser + reference points. Its values are pixel
# coordinates and [0, 1] positions whose fp16 spacing (2^-11 relative) moves samples by a large part of a
# pixel on the fine levels; kept float32 they cut a Deformable fp16 file's largest scaled error 3.5x
# (docs/VALIDATION.md). The sampling node itself stays in the file's dtype.
COORDINATE_GROUPS = frozenset(
    {
        "model.glue",
        "model.reference_points",
        "encoder.reference_points",
        "decoder.reference_points",
        "encoder.sampling_locations",
        "decoder.sampling_locations",
    }
)


def is_coordinate_node(node: onnx.NodeProto) -> bool:
    """Whether `node` computes sampling positions (COORDINATE_GROUPS)."""
    return node_group(node.name) in COORDINATE_GROUPS
