"""What a deployable file says about itself, read without running it: its gsmlp metadata and its input size.

    metadata, canvas = read_onnx_facts("runs/gated.onnx")     # canvas: the fixed (h, w) input, or None
    metadata, canvas = engine_facts("runs/gated.engine")      # from the engine's JSON: no TensorRT needed

Shared by the runners (gsmlp.runtime.deployed) and by prepare_image, which sizes the C++ samples' input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gsmlp.deploy_metadata import DeployMetadata, from_props
from gsmlp.errors import GsmlpError
from gsmlp.paths import require_file

REQUIRED_OUTPUTS = ("logits", "pred_boxes")


def _static_canvas(shape: list[Any] | tuple[Any, ...]) -> tuple[int, int] | None:
    """(h, w) of a pixel_values shape whose height and width are fixed numbers."""
    height, width = shape[-2], shape[-1]
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    return None


def onnx_file_facts(session: Any, path: str) -> tuple[DeployMetadata, tuple[int, int] | None, Any]:
    """(metadata, static canvas or None, declared batch) of an opened ONNX Runtime session on `path`."""
    inputs = {inp.name: inp for inp in session.get_inputs()}
    outputs = {out.name for out in session.get_outputs()}
    metadata = from_props(session.get_modelmeta().custom_metadata_map, path)
    if "pixel_values" not in inputs or not set(REQUIRED_OUTPUTS) <= outputs:
        raise GsmlpError(
            f"{path} takes {sorted(inputs)} and gives {sorted(outputs)}; a file of `gsmlp export` takes "
            "pixel_values (and pixel_mask) and gives logits and pred_boxes"
        )
    shape = inputs["pixel_values"].shape
    return metadata, _static_canvas(shape), shape[0]


def read_onnx_facts(path: str | Path) -> tuple[DeployMetadata, tuple[int, int] | None]:
    """Metadata and static canvas of an ONNX file (the function body runs its nodes: no library needed)."""
    from gsmlp.runtime.ort_session import open_session

    path = require_file(path, "--model")
    opened = open_session(path, op="function", label=str(path))
    metadata, canvas, _ = onnx_file_facts(opened.session, str(path))
    return metadata, canvas


def engine_facts(path: str | Path) -> tuple[DeployMetadata, tuple[int, int] | None]:
    """Metadata and static canvas of an engine, from its JSON alone (no TensorRT needed)."""
    from gsmlp.runtime.engine_metadata import model_metadata, read_metadata

    path = require_file(path, "--engine")
    meta = read_metadata(path)
    metadata = model_metadata(path, meta)
    shape = ((meta or {}).get("inputs") or {}).get("pixel_values", {}).get("shape") or [-1, -1]
    return metadata, _static_canvas(shape)


def is_engine(path: str | Path) -> bool:
    """An engine of `gsmlp build` (its JSON beside it), as opposed to an ONNX file."""
    from gsmlp.runtime.engine_metadata import metadata_path

    return metadata_path(path).is_file() or Path(path).suffix in (".engine", ".plan", ".trt")
