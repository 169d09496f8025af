"""One validation run: set the reference model to the ONNX file's mode, build backends, run, report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gsmlp.errors import GsmlpError
from gsmlp.model.wrap import set_mode
from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend, read_onnx
from gsmlp.validation.coco_run import coco_batches, coco_evaluator
from gsmlp.validation.harness import validate_backends
from gsmlp.validation.inputs import input_shape
from gsmlp.validation.tolerances import tolerance_for


def _onnx_metadata(path: str) -> tuple[dict[str, str], tuple[int | None, ...]]:
    proto = read_onnx(path)
    return {p.key: p.value for p in proto.metadata_props}, input_shape(proto)


def _reference_model(loaded, metadata: dict[str, str], path: str):
    family = metadata.get("gsmlp.family")
    if family and family != loaded.family:
        raise GsmlpError(f"{path} was exported from a {family} model, but --model is {loaded.family}")
    if metadata.get("gsmlp.mode") == "dense":
        set_mode(loaded.model, "dense")  # the file holds plain FFNs: compare with the dense model
    return loaded.model


def _backends(names: Sequence[str], model, path: str) -> dict:
    backends: dict = {}
    for name in names:
        if name == "pytorch":
            backends[name] = PyTorchBackend(model)
        elif name == "onnxruntime":
            try:
                backends[name] = OnnxRuntimeBackend(path)
            except ImportError as exc:
                backends[name] = f"onnxruntime is not installed: {exc}"
    return backends


def build_report(
    loaded, onnx_path: str | Path, dataset, names: Sequence[str], *, limit, batch_size: int
) -> dict:
    path = str(onnx_path)
    metadata, shape = _onnx_metadata(path)
    model = _reference_model(loaded, metadata, path)
    batches = coco_batches(dataset, limit, loaded.preprocess, batch_size, shape, path)
    if not batches:
        raise GsmlpError(f"{getattr(dataset, 'name', 'the dataset')} has no readable images to validate on")
    dtype = metadata.get("gsmlp.dtype", "fp32")
    report = validate_backends(
        _backends(names, model, path),
        batches,
        family=loaded.family,
        tolerance=tolerance_for(dtype),
        evaluate=coco_evaluator(dataset, batches, loaded.family),
    )
    skipped = list(getattr(dataset, "unreadable", []))
    return {
        "model": loaded.source,
        "onnx": path,
        "dtype": dtype,
        "family": loaded.family,
        "skipped_images": skipped,
        **report,
    }
