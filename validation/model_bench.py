"""`gsmlp bench model`: the whole detector, dense and gated, per backend: median ms per image.

PyTorch runs the checkpoint in dense mode and in its gated modes (the gsmlp CPU kernel where it serves the
layers); ONNX Runtime runs a dense and a gated ONNX file (the gated one through the gsmlp op library unless
--ort-op says otherwise). Per image, every variant runs once, one after the other, so load changes on a
shared machine hit all of them alike; the first --warmup images are not counted. No figure is carried over:
the ratios are measured in this run, with the same threads for every backend.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP
from gsmlp.model.processing import PreprocessConfig

BACKENDS = ("pytorch", "onnxruntime")


@dataclass
class ModelBenchOptions:
    model: str
    backends: list[str]
    data: str = "shapes-val"
    images_dir: str | None = None
    limit: int = 20
    warmup: int = 2
    threads: int | None = None
    height: int | None = None  # the static canvas of exported files (default: the model's longest edge)
    width: int | None = None
    onnx_dense: Path | None = None
    onnx_gated: Path | None = None
    ort_op: str = "auto"
    ort_threading: str = "onnxruntime"  # "both": also time the library on its own OpenMP threads


# A variant: name -> run(pixel_values, pixel_mask). Its times are per image (batch 1).
Variants = dict[str, Callable[[np.ndarray, np.ndarray], object]]


def _check(options: ModelBenchOptions) -> None:
    unknown = [b for b in options.backends if b not in BACKENDS]
    if unknown or not options.backends:
        raise GsmlpError(f"--backends: unknown {unknown or 'empty list'}; choose from {', '.join(BACKENDS)}")
    if options.limit < 1 or options.warmup < 0 or options.warmup >= options.limit:
        raise GsmlpError(
            f"--limit {options.limit} and --warmup {options.warmup}: need limit >= 1 and 0 <= warmup < limit"
        )
    if (options.onnx_dense is None) != (options.onnx_gated is None):
        raise GsmlpError("--onnx-dense and --onnx-gated go together (or leave both out: both are exported)")


def _gated_modes(model: torch.nn.Module) -> dict[GatedSparseMLP, str]:
    layers = {m: m.mode for m in model.modules() if isinstance(m, GatedSparseMLP)}
    if not any(mode == "gated" for mode in layers.values()):
        raise GsmlpError("--model has no gated FFN: give a gated checkpoint (`gsmlp calibrate --method mgs`)")
    for layer in layers:
        layer.meter.enabled = False  # sparsity counting is eval's bookkeeping, not the model's work
    return layers


def _pytorch_variants(model: torch.nn.Module) -> tuple[Variants, str]:
    from gsmlp.model import kernel_hook
    from gsmlp.validation.backends import PyTorchBackend

    modes = _gated_modes(model)
    served = kernel_hook.install(model)
    implementation = "gsmlp CPU kernel" if served else "PyTorch reference (kernels not built)"
    backend = PyTorchBackend(model)

    def run_in(mode: str | None):
        def run(pixel_values, pixel_mask):
            for layer, own in modes.items():
                layer.mode = "dense" if mode == "dense" else own
            return backend.run(pixel_values, pixel_mask)

        return run

    return {"dense": run_in("dense"), "gated": run_in(None)}, implementation


def _onnxruntime_variants(dense: Path, gated: Path, options: ModelBenchOptions) -> tuple[Variants, str]:
    from gsmlp.validation.backends import OnnxRuntimeBackend

    threads = options.threads or 0  # set by run_model_bench: torch's thread count
    variants: Variants = {}
    # The variants run in turn, image by image: no spinning, or one session's idle threads take the cores
    # from the next session's run (the same for dense and gated).
    dense_backend = OnnxRuntimeBackend(dense, threads=threads, use_cuda=False, spin=False)
    gated_backend = OnnxRuntimeBackend(gated, threads=threads, use_cuda=False, op=options.ort_op, spin=False)
    variants["dense"], variants["gated"] = dense_backend.run, gated_backend.run
    if options.ort_threading == "both" and gated_backend.implementation.startswith("gsmlp op library"):
        from gsmlp.runtime.ort_session import open_session

        session = open_session(
            gated_backend.data, op="library", threads=threads, use_cuda=False, threading="openmp",
            spin=False, label=str(gated), external_data_folder=gated_backend.file.folder,
        ).session  # fmt: skip
        variants["gated_openmp"] = lambda v, m: session.run(None, {"pixel_values": v, "pixel_mask": m})
    return variants, gated_backend.implementation


def _export_both(loaded, folder: Path, height: int, width: int) -> tuple[Path, Path]:
    from gsmlp.exporter.export import ExportOptions, export_onnx

    dense, gated = folder / "dense.onnx", folder / "gated.onnx"
    export_onnx(loaded.model, gated, ExportOptions(height=height, width=width))
    export_onnx(loaded.model, dense, ExportOptions(height=height, width=width, dense=True))
    return dense, gated


def _time(variants: dict[str, Variants], batches, warmup: int, progress) -> dict[str, dict[str, list[float]]]:
    times = {backend: {name: [] for name in runs} for backend, runs in variants.items()}
    for index, batch in enumerate(batches):
        for backend, runs in variants.items():
            for name, run in runs.items():
                start = time.perf_counter()
                run(batch.pixel_values, batch.pixel_mask)
                if index >= warmup:
                    times[backend][name].append((time.perf_counter() - start) * 1e3)
        progress()
    return times


def _summary(times: dict[str, list[float]], implementation: str) -> dict:
    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}
    entry = {"dense_ms": medians["dense"], "gated_ms": medians["gated"]}
    entry["speedup"] = round(medians["dense"] / medians["gated"], 3)
    if "gated_openmp" in medians:
        entry["gated_openmp_ms"] = medians["gated_openmp"]
        entry["speedup_openmp"] = round(medians["dense"] / medians["gated_openmp"], 3)
    entry["implementation"] = implementation
    return entry


def fit_to_canvas(preprocess: PreprocessConfig, height: int, width: int) -> PreprocessConfig:
    """The model's resize, capped so that every padded image fits the static canvas of the exported files.

    A static Deformable DETR file takes one size; a COCO image resized by an R50 config (800 / 1333) and
    padded would overflow an 800 x 800 canvas, so the bench resizes images to fit the size it was asked for.
    """
    cap = min(height, width) // preprocess.pad_multiple * preprocess.pad_multiple
    if cap <= 0 or (preprocess.longest_edge <= cap and preprocess.shortest_edge <= cap):
        return preprocess
    return replace(
        preprocess,
        shortest_edge=min(preprocess.shortest_edge, cap),
        longest_edge=min(preprocess.longest_edge, cap),
    )


def run_model_bench(options: ModelBenchOptions, progress: Callable[[], None] = lambda: None) -> dict:
    """Time every backend's dense and gated detector on the same preprocessed images; the report dict."""
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.coco_run import coco_batches

    _check(options)
    if options.threads:
        torch.set_num_threads(options.threads)
    options.threads = torch.get_num_threads()  # the same count for ONNX Runtime's intra-op threads
    loaded = load_detector(options.model)
    edge = loaded.preprocess.longest_edge
    height, width = options.height or edge, options.width or edge
    preprocess = fit_to_canvas(loaded.preprocess, height, width)
    dataset = resolve_dataset(options.data, options.images_dir)
    batches = coco_batches(dataset, options.limit, preprocess, 1, (1, 3, height, width), options.model)
    if len(batches) <= options.warmup:
        raise GsmlpError(
            f"{options.data} gave {len(batches)} images; --warmup {options.warmup} leaves none to time"
        )
    with ExitStack() as stack:
        dense, gated = options.onnx_dense, options.onnx_gated
        if "onnxruntime" in options.backends and dense is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gsmlp-bench-")))
            dense, gated = _export_both(loaded, folder, height, width)
        variants, implementations = {}, {}
        if "pytorch" in options.backends:
            variants["pytorch"], implementations["pytorch"] = _pytorch_variants(loaded.model)
        if "onnxruntime" in options.backends:
            variants["onnxruntime"], implementations["onnxruntime"] = _onnxruntime_variants(
                dense, gated, options
            )
        times = _time(variants, batches, options.warmup, progress)
    return {
        "model": options.model,
        "family": loaded.family,
        "data": options.data,
        "images_timed": len(batches) - options.warmup,
        "warmup_images": options.warmup,
        "size": [height, width],
        "resize": {"shortest_edge": preprocess.shortest_edge, "longest_edge": preprocess.longest_edge},
        "threads": torch.get_num_threads(),
        "onnx": {"dense": str(options.onnx_dense), "gated": str(options.onnx_gated)}
        if options.onnx_dense
        else "exported for this run (static size above)",
        "backends": {name: _summary(times[name], implementations[name]) for name in variants},
    }
