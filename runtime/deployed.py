"""A deployable file, opened for detection: its runtime, its metadata, and one image in, detections out.

    model = open_onnx("runs/gated.onnx")          # ONNX Runtime, with the gsmlp op library where built
    model = open_engine("runs/gated.engine")      # TensorRT with the GatedSparseMLP plugin
    found = detect_image(model, image, score_threshold=0.5, source="photo.jpg")

Torch-free: numpy, pillow, and onnxruntime or tensorrt + pycuda. What pre- and post-processing need is read
from the file itself (gsmlp.deploy_metadata); decoding is gsmlp.model.decoding's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gsmlp.deploy_metadata import DeployMetadata
from gsmlp.errors import GsmlpError
from gsmlp.model.decoding import DEFAULT_TOP_K, Detections, decode, nonfinite_outputs
from gsmlp.paths import require_file
from gsmlp.runtime.file_facts import REQUIRED_OUTPUTS, engine_facts, onnx_file_facts
from gsmlp.runtime.prepare_image import prepare

if TYPE_CHECKING:
    from PIL.Image import Image

Outputs = dict[str, np.ndarray]
SHOWN_SCORE = 0.5  # the score from which a picture shows a detection (`gsmlp detect --score`, the demo)


@dataclass
class DeployedModel:
    """A detector ready to run: `run(pixel_values, pixel_mask)` -> at least logits and pred_boxes."""

    source: str  # the file, as messages name it
    metadata: DeployMetadata
    canvas: tuple[int, int] | None  # the fixed (h, w) input of a static file; None where it is dynamic
    implementation: str  # what computes the GatedSparseMLP layers ("gsmlp op library (CPU)", ...)
    run: Callable[[np.ndarray, np.ndarray], Outputs]


def _onnx_runner(session: Any, batch: Any) -> Callable[[np.ndarray, np.ndarray], Outputs]:
    names = {inp.name for inp in session.get_inputs()}

    def run(pixel_values: np.ndarray, pixel_mask: np.ndarray) -> Outputs:
        if isinstance(batch, int) and batch > 1:  # a file traced for a fixed batch: repeat the image
            pixel_values, pixel_mask = np.repeat(pixel_values, batch, 0), np.repeat(pixel_mask, batch, 0)
        feeds = {"pixel_values": pixel_values, "pixel_mask": pixel_mask}
        outputs = session.run(list(REQUIRED_OUTPUTS), {k: v for k, v in feeds.items() if k in names})
        return {name: value[:1] for name, value in zip(REQUIRED_OUTPUTS, outputs, strict=True)}

    return run


def open_onnx(path: str | Path, *, op: str = "auto", threads: int = 0) -> DeployedModel:
    """ONNX Runtime on `path`, with the gsmlp op library where it is built (op: ort_session.OP_CHOICES)."""
    from gsmlp.runtime.ort_session import open_session

    path = require_file(path, "--onnx")
    opened = open_session(path, op=op, threads=threads, label=str(path))
    metadata, canvas, batch = onnx_file_facts(opened.session, str(path))
    return DeployedModel(
        str(path), metadata, canvas, opened.implementation, _onnx_runner(opened.session, batch)
    )


def open_engine(path: str | Path, *, plugin_lib: str | Path | None = None) -> DeployedModel:
    """TensorRT on a `gsmlp build` engine, with the GatedSparseMLP plugin library."""
    from gsmlp.runtime.trt_runner import TensorRTRunner

    metadata, canvas = engine_facts(path)  # before TensorRT: a file without metadata fails in a second
    runner = TensorRTRunner(path, plugin_lib)
    return DeployedModel(str(path), metadata, canvas, runner.implementation or "TensorRT", runner.run)


def detect_image(
    model: DeployedModel,
    image: Image,
    *,
    source: str,
    score_threshold: float = 0.0,
    top_k: int = DEFAULT_TOP_K,
) -> Detections:
    """One image through the model: pre-processed by the file's metadata, decoded by gsmlp.model.decoding."""
    prepared = prepare(image, model.metadata, model.canvas, source)
    outputs = model.run(prepared.pixel_values, prepared.pixel_mask)
    broken = nonfinite_outputs({name: outputs[name] for name in REQUIRED_OUTPUTS})
    if broken:
        raise GsmlpError(f"{model.source} produced non-finite outputs on {source}: {broken}")
    return decode(
        outputs["logits"][0],
        outputs["pred_boxes"][0],
        model.metadata.activation,
        prepared.original_size,
        top_k=top_k,
        score_threshold=score_threshold,
    )
