"""One validation run: set the reference model to the ONNX file's mode, build backends, run, report."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from gsmlp.distributed import ONE_PROCESS, Group, shard_bounds
from gsmlp.errors import GsmlpError
from gsmlp.exporter.export import SAMPLING_KEY
from gsmlp.model.sampling import sampling_in_use, transformers_sampling
from gsmlp.model.wrap import modes_kept, reset_sparsity, set_mode, sum_sparsity
from gsmlp.validation.backends import OnnxFile, OnnxRuntimeBackend, PyTorchBackend, read_onnx_file
from gsmlp.validation.coco_run import coco_batches, coco_evaluator
from gsmlp.validation.gate_decisions import PinnedReference
from gsmlp.validation.harness import validate_backends
from gsmlp.validation.inputs import input_shape
from gsmlp.validation.tolerances import DEFAULT_REFERENCE_IMAGES, Tolerances, tolerance_for


def _onnx_metadata(onnx_file: OnnxFile, loaded) -> tuple[dict[str, str], tuple[int | None, ...]]:
    proto, path = onnx_file.proto, str(onnx_file.path)
    shape = input_shape(proto, source=path)
    _check_output_shapes(proto, loaded, path)
    return {p.key: p.value for p in proto.metadata_props}, shape


def _check_output_shapes(proto, loaded, path: str) -> None:
    """The file's per-image outputs (queries x classes, queries x 4) are the model's: a file exported from
    another detector is named here, before any image runs."""
    config = loaded.model.config
    classes = config.num_labels + (1 if loaded.family == "detr" else 0)  # DETR adds "no object"
    expected = {"logits": (config.num_queries, classes), "pred_boxes": (config.num_queries, 4)}
    for output in proto.graph.output:
        if output.name not in expected:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in output.type.tensor_type.shape.dim]
        want = expected[output.name]
        if len(dims) != 3 or any(got is not None and got != w for got, w in zip(dims[1:], want, strict=True)):
            shown = "x".join("?" if d is None else str(d) for d in dims)
            raise GsmlpError(
                f"{path} does not fit --model {loaded.source}: its {output.name} output is {shown}, the "
                f"model's is Bx{want[0]}x{want[1]}; it was exported from another model (re-export it)"
            )


def _reference_model(loaded, metadata: dict[str, str], path: str):
    family = metadata.get("gsmlp.family")
    if family and family != loaded.family:
        raise GsmlpError(f"{path} was exported from a {family} model, but --model is {loaded.family}")
    if metadata.get("gsmlp.mode") == "dense":
        set_mode(loaded.model, "dense")  # the file holds plain FFNs: compare with the dense model
    return loaded.model


@contextlib.contextmanager
def _reference_sampling(model, metadata: dict[str, str]) -> Iterator[None]:
    """PyTorch samples as the file does: a file that holds transformers' GridSample form ("inline", and every
    file written before the op existed) is compared with transformers' own module, unmodified; a file with
    the MultiScaleDeformableAttention op with the sampling the model was loaded with (--torch-sampling)."""
    if metadata.get(SAMPLING_KEY, "inline") == "inline":
        with transformers_sampling(model):
            yield
    else:
        yield


def tensorrt_backend(engine: str | Path | None, plugin_lib: str | Path | None):
    """A TensorRTRunner, or the reason it cannot run here (a string: the backend is then `skipped`).

    Missing TensorRT, pycuda or GPU is a property of this machine, so it skips; an engine that exists but
    will not load is a crash of the backend, so the error propagates and the backend is `failed`.
    """
    from gsmlp.runtime.trt_common import tensorrt_missing

    missing = tensorrt_missing()
    if missing:
        return missing
    if engine is None:
        return "no --engine given (build one with `gsmlp build`)"
    from gsmlp.runtime.trt_runner import TensorRTRunner

    return TensorRTRunner(engine, plugin_lib)


def _backends(
    names: Sequence[str], model, onnx_file: OnnxFile, engine=None, plugin_lib=None, ort_op="auto"
) -> dict:
    backends: dict = {}
    for name in names:
        if name == "pytorch":
            backends[name] = PyTorchBackend(model)
        elif name == "onnxruntime":
            try:
                backends[name] = OnnxRuntimeBackend(onnx_file, gate_decisions=_is_gated(model), op=ort_op)
            except ImportError as exc:
                backends[name] = f"onnxruntime is not installed: {exc}"
        elif name == "tensorrt":
            try:
                backends[name] = tensorrt_backend(engine, plugin_lib)
            except GsmlpError as exc:
                backends[name] = _Failed(name, str(exc))
    return backends


class _Failed:
    """A backend that could not even be created: it reports `failed` with the error, the others still run."""

    def __init__(self, name: str, error: str) -> None:
        self.name, self.error = name, error

    def run(self, pixel_values, pixel_mask):
        raise GsmlpError(self.error)


def _is_gated(model) -> bool:
    from gsmlp.model.wrap import gated_layers

    return any(layer.mode == "gated" for _, layer in gated_layers(model))


def _measured_sparsity(model) -> dict | None:
    """PyTorch's FFN sparsity meters over the run; the exported graphs compute the same gates unmeasured."""
    from gsmlp.calibration.evaluation import mac_ratios
    from gsmlp.model.wrap import gated_layers, sparsity_report

    if not any(True for _ in gated_layers(model)):
        return None
    return {"sparsity": sparsity_report(model), "macs": mac_ratios(model)}


def _batch_shard(dataset, limit: int | None, batch_size: int, group: Group):
    """This rank's images: a contiguous run of whole batches, so that every batch is one process's."""
    ids = dataset.image_ids if limit is None else dataset.image_ids[:limit]
    start, end = shard_bounds(-(-len(ids) // batch_size), group.rank, group.world_size)
    return dataset.subset(ids[start * batch_size : end * batch_size])


def build_report(
    loaded,
    onnx_path: str | Path,
    dataset,
    names: Sequence[str],
    *,
    limit,
    batch_size: int,
    engine: str | Path | None = None,
    plugin_lib: str | Path | None = None,
    tolerances: Tolerances | None = None,
    ort_op: str = "auto",
    reference_images: int | None = DEFAULT_REFERENCE_IMAGES,
    group: Group = ONE_PROCESS,
) -> dict | None:
    """ort_op: how ONNX Runtime computes GatedSparseMLP (gsmlp.runtime.ort_session.OP_CHOICES).
    reference_images: how many images the fp64 reference covers (None: all; gsmlp.validation.precision).
    group: under torchrun each rank takes a contiguous share of whole batches (the batches of one
    process, so the parity is one process's); rank 0 returns the merged report, the others None.
    The model's FFN modes are restored on return, so one loaded model serves several files."""
    with modes_kept(loaded.model):
        return _build_report(
            loaded, onnx_path, dataset, names, limit=limit, batch_size=batch_size, engine=engine,
            plugin_lib=plugin_lib, tolerances=tolerances, ort_op=ort_op, reference_images=reference_images,
            group=group,
        )  # fmt: skip


def _build_report(
    loaded, onnx_path, dataset, names, *, limit, batch_size, engine, plugin_lib, tolerances, ort_op,
    reference_images, group,
) -> dict | None:  # fmt: skip
    path = str(onnx_path)
    onnx_file = read_onnx_file(onnx_path)  # the one read of the file: settings and session alike
    metadata, shape = _onnx_metadata(onnx_file, loaded)
    model = _reference_model(loaded, metadata, path)
    with group.together("preprocessing its share of the images"):
        shard = _batch_shard(dataset, limit, batch_size, group)
        batches = coco_batches(shard, None, loaded.preprocess, batch_size, shape, path)
    dataset.unreadable = [name for part in group.all_gather(shard.unreadable) for name in part]
    if not sum(group.all_gather(len(batches))):
        raise dataset.usable_images_error(limit)
    dtype = metadata.get("gsmlp.dtype", "fp32")
    reset_sparsity(model)
    backends = _backends(names, model, onnx_file, engine, plugin_lib, ort_op)
    with _reference_sampling(model, metadata):
        pytorch_sampling = sampling_in_use(model)
        report = validate_backends(
            backends,
            batches,
            family=loaded.family,
            tolerance={name: tolerance_for(dtype, name, tolerances) for name in names},
            evaluate_for=lambda every_batch: coco_evaluator(dataset, every_batch, loaded.family),
            pin=PinnedReference(PyTorchBackend(model)) if _is_gated(model) else None,
            dtype=dtype,
            reference_images=reference_images,
            group=group,
        )
    images_per_rank = group.gather(sum(batch.context.real for batch in batches))
    sum_sparsity(model, group)
    if report is None:
        return None
    for name, entry in report["backends"].items():
        # Only PyTorch's gated modules count skipped neurons; None says "not measured", never "dense".
        measured = _measured_sparsity(model) if name == "pytorch" and entry["status"] == "ok" else None
        entry["ffn_sparsity"] = measured["sparsity"] if measured else None
        entry["ffn_macs"] = measured["macs"] if measured else None
        # What computed the GatedSparseMLP nodes (ONNX Runtime: the op library or the function body).
        entry["implementation"] = (
            getattr(backends[name], "implementation", None) if entry["status"] == "ok" else None
        )
    skipped = list(getattr(dataset, "unreadable", []))
    return {
        "model": loaded.source,
        "onnx": path,
        "dtype": dtype,
        "family": loaded.family,
        # Deformable DETR: what the file holds (op | inline) and what computed PyTorch's sampling.
        "sampling": {"onnx": metadata.get(SAMPLING_KEY, "inline"), "pytorch": pytorch_sampling}
        if pytorch_sampling
        else None,
        "skipped_images": skipped,
        # Listed in the annotations, absent from the folder: skipped too, never scored as misses.
        "missing_images": list(getattr(dataset, "missing", [])),
        "distributed": group.report(images_per_rank),
        **report,
    }
