"""The ONNX local function `gsmlp::MultiScaleDeformableAttention`: Deformable DETR's sampling in standard ops.

The body is the levelwise form of exporter/deformable_attention.py: per level, slice the level's values,
draw its samples with one `GridSample` (bilinear, zero padding, align_corners=False, as transformers), weight
and sum them over the points, and add the per-level sums. A runtime without a kernel for the op inlines it.

The level sizes and offsets come from the `spatial_shapes` and `level_start_index` inputs in the graph, so
the body is exact at any image size. The number of levels L is the one thing it cannot read at run time:
each level is its own `GridSample` on its own slice, so L fixes the body's structure. A file therefore holds
one function per L (`multi_scale_deformable_attention_function(levels)`); every deformable attention of a
Deformable DETR shares `num_feature_levels`, so a file holds exactly one. Two in-graph checks turn a wrong
input into an error instead of a silent misread: `spatial_shapes` must hold L rows (a Reshape to [L, 2]),
and `value` must hold sum_l H_l * W_l positions (a Reshape of `value` to that length).

dtype-generic: the float inputs are cast to float32 and the output cast back (CastLike) to the type of
`value`, so the positions, corner weights and sums are float32 for fp16 files too, as the contract asks;
for float32 files those casts are no-ops.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from gsmlp.op_identity import DOMAIN, MSDA_ATTRIBUTES, MSDA_INPUTS, MSDA_OP_TYPE, MSDA_OUTPUTS, ONNX_OPSET

VALUE, SHAPES, STARTS, LOCATIONS, WEIGHTS = MSDA_INPUTS


def _ints(output: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], value_ints=values)


def _concat(output: str, parts: list[str]) -> onnx.NodeProto:
    return helper.make_node("Concat", parts, [output], axis=0)


def _reshape(data: str, shape: str, output: str) -> onnx.NodeProto:
    # allowzero: a 0 in a computed shape (no queries, an empty batch) is a size, not "copy the input's".
    return helper.make_node("Reshape", [data, shape], [output], allowzero=1)


def _shared_nodes(levels: int) -> list[onnx.NodeProto]:
    """Level table, checked sizes, and the float32 inputs every level reads."""
    dims = [("n", VALUE, 0), ("m", VALUE, 2), ("d", VALUE, 3), ("lq", LOCATIONS, 1), ("p", LOCATIONS, 4)]
    return [
        helper.make_node("Cast", [SHAPES], ["shapes_i64"], to=TensorProto.INT64),
        _ints("levels_by_2", [levels, 2]),
        _reshape("shapes_i64", "levels_by_2", "level_hw"),  # fails unless spatial_shapes has L rows
        helper.make_node("Cast", [STARTS], ["starts_i64"], to=TensorProto.INT64),
        _ints("levels_1d", [levels]),
        _reshape("starts_i64", "levels_1d", "level_start"),
        helper.make_node("ReduceProd", ["level_hw"], ["level_size"], axes=[1], keepdims=0),
        helper.make_node("ReduceSum", ["level_size"], ["total_size"], keepdims=1),
        *[
            helper.make_node("Shape", [source], [name], start=axis, end=axis + 1)
            for name, source, axis in dims
        ],
        helper.make_node("Mul", ["n", "m"], ["nm"]),
        helper.make_node("Mul", ["m", "d"], ["md"]),
        _ints("one_i64", [1]),
        _ints("two_i64", [2]),
        _ints("last_axis", [-1]),
        _concat("value_checked_shape", ["n", "total_size", "m", "d"]),
        _reshape(VALUE, "value_checked_shape", "value_checked"),  # fails unless S == sum_l H_l * W_l
        helper.make_node("Cast", ["value_checked"], ["value_f32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [LOCATIONS], ["locations_f32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [WEIGHTS], ["weights_f32"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["two_f32"], value_float=2.0),
        helper.make_node("Constant", [], ["one_f32"], value_float=1.0),
        # transformers' grid: 2 * location - 1, in [-1, 1] for locations inside the level.
        helper.make_node("Mul", ["locations_f32", "two_f32"], ["locations_x2"]),
        helper.make_node("Sub", ["locations_x2", "one_f32"], ["grids"]),
        _concat("grid_shape", ["nm", "lq", "p", "two_i64"]),
        _concat("weight_shape", ["nm", "one_i64", "lq", "p"]),
    ]


def _level_nodes(level: int) -> tuple[list[onnx.NodeProto], str]:
    """One level's weighted samples summed over its points: [N*M, D, Lq]; and the name of that sum."""
    x = f"l{level}_"
    return [
        helper.make_node("Constant", [], [x + "index"], value_int=level),
        _ints(x + "index_1d", [level]),
        helper.make_node("Gather", ["level_hw", x + "index"], [x + "hw"], axis=0),
        helper.make_node("Gather", ["level_size", x + "index_1d"], [x + "size"], axis=0),
        helper.make_node("Gather", ["level_start", x + "index_1d"], [x + "start"], axis=0),
        helper.make_node("Add", [x + "start", x + "size"], [x + "end"]),
        helper.make_node("Slice", ["value_f32", x + "start", x + "end", "one_i64"], [x + "value"]),
        # [N, HW, M, D] -> [N, HW, M*D] -> [N, M*D, HW] -> [N*M, D, H, W], as transformers lays it out
        _concat(x + "flat_shape", ["n", x + "size", "md"]),
        _reshape(x + "value", x + "flat_shape", x + "value_flat"),
        helper.make_node("Transpose", [x + "value_flat"], [x + "value_t"], perm=[0, 2, 1]),
        _concat(x + "image_shape", ["nm", "d", x + "hw"]),
        _reshape(x + "value_t", x + "image_shape", x + "image"),
        # [N, Lq, M, P, 2] -> [N, M, Lq, P, 2] -> [N*M, Lq, P, 2]
        helper.make_node("Gather", ["grids", x + "index"], [x + "grid_5d"], axis=3),
        helper.make_node("Transpose", [x + "grid_5d"], [x + "grid_t"], perm=[0, 2, 1, 3, 4]),
        _reshape(x + "grid_t", "grid_shape", x + "grid"),
        helper.make_node(
            "GridSample",
            [x + "image", x + "grid"],
            [x + "samples"],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=0,
        ),
        # [N, Lq, M, P] -> [N, M, Lq, P] -> [N*M, 1, Lq, P]: one weight per sample, broadcast over D
        helper.make_node("Gather", ["weights_f32", x + "index"], [x + "weight_4d"], axis=3),
        helper.make_node("Transpose", [x + "weight_4d"], [x + "weight_t"], perm=[0, 2, 1, 3]),
        _reshape(x + "weight_t", "weight_shape", x + "weight"),
        helper.make_node("Mul", [x + "samples", x + "weight"], [x + "weighted"]),
        helper.make_node("ReduceSum", [x + "weighted", "last_axis"], [x + "sum"], keepdims=0),
    ], x + "sum"


def _output_nodes(total: str) -> list[onnx.NodeProto]:
    """[N*M, D, Lq] -> [N, M*D, Lq] -> [N, Lq, M*D], cast back to the type of `value`."""
    return [
        _concat("out_shape", ["n", "md", "lq"]),
        _reshape(total, "out_shape", "out_nmdq"),
        helper.make_node("Transpose", ["out_nmdq"], ["out_f32"], perm=[0, 2, 1]),
        helper.make_node("CastLike", ["out_f32", VALUE], [MSDA_OUTPUTS[0]]),
    ]


def multi_scale_deformable_attention_function(levels: int) -> onnx.FunctionProto:
    """The FunctionProto for MultiScaleDeformableAttention nodes that sample `levels` feature levels."""
    if levels < 1:
        raise ValueError(f"a multi-scale deformable attention samples at least 1 level, got {levels}")
    nodes = _shared_nodes(levels)
    total = None
    for level in range(levels):
        level_nodes, level_sum = _level_nodes(level)
        nodes.extend(level_nodes)
        if total is None:
            total = level_sum
        else:
            nodes.append(helper.make_node("Add", [total, level_sum], [f"sum_to_l{level}"]))
            total = f"sum_to_l{level}"
    nodes.extend(_output_nodes(total))
    return helper.make_function(
        DOMAIN,
        MSDA_OP_TYPE,
        inputs=list(MSDA_INPUTS),
        outputs=list(MSDA_OUTPUTS),
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        attributes=list(MSDA_ATTRIBUTES),
        doc_string=(
            f"output[n, q, m*D + c] = sum over {levels} levels l and points p of attention_weights * "
            "bilinear sample (zero padding, align_corners=False) of level l's values at sampling_locations"
        ),
    )


def sampling_levels(function: onnx.FunctionProto) -> int:
    """How many levels a body built here samples (the L it was built for)."""
    return sum(node.op_type == "GridSample" for node in function.node)
