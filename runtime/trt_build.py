"""Build a TensorRT engine from a gsmlp ONNX file, with the GatedSparseMLP plugin, and describe it in JSON.

The network is strongly typed: every tensor keeps the type the ONNX gives it, so an fp16 engine comes from
an fp16 ONNX (TensorRT 11 has no FP16 builder flag). Used by `gsmlp build`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gsmlp.errors import GsmlpError
from gsmlp.io import atomic_file_set, write_bytes_atomic, write_json_atomic
from gsmlp.op_identity import OP_TYPE as PLUGIN_NAME
from gsmlp.op_identity import PLUGIN_NAMESPACE, PLUGIN_VERSION
from gsmlp.paths import read_regular_bytes, require_file
from gsmlp.runtime.engine_metadata import FORMAT, metadata_path
from gsmlp.runtime.trt_common import (
    find_plugin_library,
    gpu_description,
    import_tensorrt,
    load_plugin_library,
    make_logger,
)

_SHAPE = re.compile(r"^\d+(x\d+)*$")


@dataclass(frozen=True)
class ShapeSpec:
    """Batch, height, width at the min/opt/max points of the optimization profile."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]


def parse_shapes(text: str) -> ShapeSpec:
    """`BxHxW` (fixed) or `BxHxW,BxHxW,BxHxW` (min,opt,max), e.g. `1x512x512,1x800x800,1x1333x1333`."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not all(_SHAPE.match(p) and p.count("x") == 2 for p in parts):
        raise GsmlpError(
            f"--shapes {text!r}: expected BxHxW or min,opt,max as BxHxW,BxHxW,BxHxW "
            "(batch x height x width), e.g. 1x512x512,1x800x800,1x1333x1333"
        )
    points = [tuple(int(v) for v in p.split("x")) for p in parts]
    for name, point in zip(("min", "opt", "max"), points, strict=True):
        if min(point) < 1:
            raise GsmlpError(f"--shapes {text!r}: the {name} shape {point} has a dimension below 1")
    for axis, label in enumerate(("batch", "height", "width")):
        lo, mid, hi = (p[axis] for p in points)
        if not lo <= mid <= hi:
            raise GsmlpError(
                f"--shapes {text!r}: {label} must satisfy min <= opt <= max, got {lo}, {mid}, {hi}"
            )
    return ShapeSpec(*points)  # type: ignore[arg-type]


def profile_dims(name: str, dims: list[int], point: tuple[int, int, int]) -> tuple[int, ...]:
    """Concrete dims for one input: batch is the first dim, height and width the last two (image-like
    inputs: pixel_values [B,3,H,W], pixel_mask [B,H,W]); every other dimension must be static."""
    batch, height, width = point
    if len(dims) < 3:
        raise GsmlpError(
            f"input {name} has shape {dims}: --shapes sets batch, height and width, so a dynamic input needs "
            "at least 3 dimensions"
        )
    concrete = list(dims)
    concrete[0], concrete[-2], concrete[-1] = batch, height, width
    for axis in range(1, len(dims) - 2):
        if dims[axis] < 0:
            raise GsmlpError(
                f"input {name} has shape {dims}: dimension {axis} is dynamic; only batch, height "
                "and width may be (export with fixed channels)"
            )
    for axis, (declared, wanted) in enumerate(zip(dims, concrete, strict=True)):
        if declared >= 0 and declared != wanted:
            raise GsmlpError(
                f"--shapes asks input {name} for {wanted} at dimension {axis}, "
                f"but the ONNX fixes it to {declared}"
            )
    return tuple(concrete)


@dataclass
class BuildOptions:
    onnx: Path
    out: Path
    plugin_lib: Path | None = None
    use_plugin: bool = True
    shapes: ShapeSpec | None = None
    timing_cache: Path | None = None
    workspace_mb: int | None = None
    verbose: bool = False
    block_masks: bool = False  # expose each GatedSparseMLP layer's BlockMask as an engine output
    extra: dict[str, Any] = field(default_factory=dict)


def _parse_onnx(data: bytes, onnx_path: Path) -> Any:
    import onnx

    try:
        return onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not an ONNX model
        raise GsmlpError(f"{onnx_path} is corrupt or not an ONNX model: {exc}") from None


def count_gated_nodes(onnx_path: Path, data: bytes | None = None) -> int:
    """GatedSparseMLP nodes in the main graph (the nodes the plugin should take over); `data`: the file's
    bytes where the caller already read them."""
    if data is None:
        data = read_regular_bytes(onnx_path, "--onnx")
    model = _parse_onnx(data, onnx_path)
    return sum(1 for node in model.graph.node if node.op_type == PLUGIN_NAME)


def onnx_metadata(onnx_path: Path, data: bytes | None = None) -> dict[str, str]:
    """The file's metadata_props (gsmlp.deploy_metadata): the engine's JSON carries them to the runtimes;
    `data`: the file's bytes where the caller already read them."""
    if data is None:
        data = read_regular_bytes(onnx_path, "--onnx")
    return {prop.key: prop.value for prop in _parse_onnx(data, onnx_path).metadata_props}


def parser_error_lines(parser: Any) -> list[str]:
    """One line per ONNX parser error, with the node it is about."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        node = error.node()
        where = "model"
        if node >= 0:
            name = error.node_name() if hasattr(error, "node_name") else ""
            op = error.node_operator() if hasattr(error, "node_operator") else ""
            where = f"node #{node} {name!r} ({op})" if name or op else f"node #{node}"
        lines.append(f"  {where}: {error.code()}: {error.desc()}")
    return lines


def _with_block_masks(data: bytes, onnx_path: Path) -> tuple[bytes, list[str]]:
    """The file with every GatedSparseMLP node's BlockMask as a graph output (in memory; the file stays)."""
    from gsmlp.exporter.graph import expose_block_masks

    model, names = expose_block_masks(_parse_onnx(data, onnx_path))
    return model.SerializeToString(), names


def _parse(
    trt: ModuleType, builder: Any, logger: Any, onnx_path: Path, data: bytes, block_masks: bool = False
) -> tuple[Any, Any, list[str]]:
    """The network, its parser, and the BlockMask outputs added (block_masks), from the file's bytes as
    read once (`data`)."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    names: list[str] = []
    if block_masks:
        data, names = _with_block_masks(data, onnx_path)
    # The path lets the parser find weights stored as external data beside the model.
    parsed = parser.parse(data, str(os.path.abspath(onnx_path)))
    if not parsed:
        raise GsmlpError(
            f"TensorRT's ONNX parser rejected {onnx_path}:\n" + "\n".join(parser_error_lines(parser))
        )
    return network, parser, names


def _plugin_layer_count(trt: ModuleType, network: Any) -> int:
    plugin_types = {
        getattr(trt.LayerType, n) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, n)
    }
    return sum(1 for i in range(network.num_layers) if network.get_layer(i).type in plugin_types)


def _add_profile(trt: ModuleType, builder: Any, config: Any, network: Any, shapes: ShapeSpec | None) -> dict:
    inputs: dict[str, dict[str, Any]] = {}
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        entry: dict[str, Any] = {"dtype": str(tensor.dtype).split(".")[-1].lower(), "shape": dims}
        if any(d < 0 for d in dims):
            dynamic = True
            if shapes is None:
                raise GsmlpError(
                    f"input {tensor.name} has dynamic shape {dims}: pass --shapes min,opt,max as BxHxW, "
                    "e.g. --shapes 1x512x512,1x800x800,1x1333x1333 (or one BxHxW for a fixed size)"
                )
            points = [profile_dims(tensor.name, dims, p) for p in (shapes.min, shapes.opt, shapes.max)]
            profile.set_shape(tensor.name, *points)
            entry.update(min=list(points[0]), opt=list(points[1]), max=list(points[2]))
        inputs[tensor.name] = entry
    if dynamic:
        config.add_optimization_profile(profile)
    return inputs


def build_engine(options: BuildOptions) -> dict[str, Any]:
    """Build and write the engine and its JSON; returns the JSON's content."""
    require_file(options.onnx, "--onnx")
    data = read_regular_bytes(options.onnx, "--onnx")  # the one read: nodes, network and digest alike
    gated_nodes = count_gated_nodes(options.onnx, data)
    trt = import_tensorrt()
    plugin_path = find_plugin_library(options.plugin_lib) if options.use_plugin else None
    if plugin_path is not None:
        load_plugin_library(trt, plugin_path)
    gpu = gpu_description()
    logger = make_logger(trt, options.verbose)
    builder = trt.Builder(logger)
    network, _parser, block_masks = _parse(trt, builder, logger, options.onnx, data, options.block_masks)

    plugin_layers = _plugin_layer_count(trt, network)
    if options.use_plugin and plugin_layers < gated_nodes:
        raise GsmlpError(
            f"{options.onnx} has {gated_nodes} GatedSparseMLP nodes but the network got "
            f"{plugin_layers} plugin layers: the parser inlined the function body instead of binding "
            "the plugin (check the nodes' "
            f'plugin_version "{PLUGIN_VERSION}" / plugin_namespace "{PLUGIN_NAMESPACE}" attributes, and that '
            "the TensorRT version binds plugins to local functions: 10.15 or newer)"
        )

    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    cache_bytes = b""
    if options.timing_cache is not None and options.timing_cache.is_file():
        cache_bytes = options.timing_cache.read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    if cache is None:  # TensorRT refuses bytes that are not a timing cache; never write over them
        raise GsmlpError(f"--timing-cache {options.timing_cache} is corrupt or not a TensorRT timing cache")
    config.set_timing_cache(cache, ignore_mismatch=False)
    inputs = _add_profile(trt, builder, config, network, options.shapes)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise GsmlpError(
            f"TensorRT could not build an engine from {options.onnx}; its errors are printed above"
        )

    outputs = {}
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        outputs[tensor.name] = {
            "dtype": str(tensor.dtype).split(".")[-1].lower(),
            "shape": list(tensor.shape),
        }
    meta: dict[str, Any] = {
        "format": FORMAT,
        "engine": options.out.name,
        "onnx": str(options.onnx),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "plugin": {
            "name": PLUGIN_NAME,
            "version": PLUGIN_VERSION,
            "namespace": PLUGIN_NAMESPACE,
            "library": str(plugin_path) if plugin_path else None,
            "layers": plugin_layers,
        }
        if options.use_plugin
        else None,
        "gated_nodes": gated_nodes,
        # What pre- and post-processing need (gsmlp.deploy_metadata), as the ONNX file carries it.
        "metadata": onnx_metadata(options.onnx, data),
        "gated_nodes_as": "plugin" if options.use_plugin else "inlined function body",
        "precision": "strongly typed: tensor types as in the ONNX",
        "inputs": inputs,
        "outputs": outputs,
        # Outputs holding each GatedSparseMLP layer's own gate decisions (gsmlp build --block-masks).
        "block_mask_outputs": block_masks,
        "workspace_mb": options.workspace_mb,
        "timing_cache": str(options.timing_cache) if options.timing_cache else None,
        "build_seconds": round(seconds, 3),
        **options.extra,
    }
    # The engine and its metadata are one set: a reader never finds one without the other.
    with atomic_file_set([options.out, metadata_path(options.out)]) as (engine, engine_json):
        write_bytes_atomic(engine, bytes(serialized))
        write_json_atomic(engine_json, meta)
    if options.timing_cache is not None:
        write_bytes_atomic(options.timing_cache, bytes(config.get_timing_cache().serialize()))
    return meta
