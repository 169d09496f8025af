"""`gsmlp bench model`: the whole detector, dense and gated, per backend: median ms per image.

PyTorch runs the checkpoint in dense mode and in its gated modes (the gsmlp CPU kernel where it serves the
layers); ONNX Runtime runs a dense and a gated ONNX file (the gated one through the gsmlp op library unless
--ort-op says otherwise). Per image, every variant runs once, one after the other, so load changes on a
shared machine hit all of them alike; the first --warmup images are not counted. No figure is carried over:
the ratios are measured in this run, with the same threads for every backend.

Deformable DETR with the MultiScaleDeformableAttention op (docs/op_spec.md) adds one baseline per backend,
the dense detector without the op, timed in the same turns: PyTorch's dense model on transformers' own
sampling module, and ONNX Runtime's dense file with the sampling exported inline (`GridSample` per level,
what every file held before the op). `speedup_vs_baseline` is that baseline's time over the gated one: what
the two ops give together. Each variant's JSON entry names the sampling it ran.
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
from gsmlp.model.detector import LoadedDetector
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
    onnx_baseline: Path | None = None  # Deformable DETR: the dense file with inline sampling
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
    if options.onnx_baseline is not None and options.onnx_dense is None:
        raise GsmlpError("--onnx-baseline goes with --onnx-dense and --onnx-gated")


def _gated_modes(model: torch.nn.Module) -> dict[GatedSparseMLP, str]:
    layers = {m: m.mode for m in model.modules() if isinstance(m, GatedSparseMLP)}
    if not any(mode == "gated" for mode in layers.values()):
        raise GsmlpError("--model has no gated FFN: give a gated checkpoint (`gsmlp calibrate --method mgs`)")
    for layer in layers:
        layer.meter.enabled = False  # sparsity counting is eval's bookkeeping, not the model's work
    return layers


# Variant name -> what computed Deformable DETR's sampling in it; "" where the model has none.
Samplings = dict[str, str]
BASELINE = "dense_baseline"


def _pytorch_variants(model: torch.nn.Module) -> tuple[Variants, str, Samplings]:
    from gsmlp.model import kernel_hook
    from gsmlp.model.sampling import (
        OP_SAMPLING,
        TRANSFORMERS_SAMPLING,
        sampling_in_use,
        transformers_sampling,
    )
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

    sampling = sampling_in_use(model)
    variants = {"dense": run_in("dense"), "gated": run_in(None)}
    samplings = {"dense": sampling, "gated": sampling}
    if sampling == OP_SAMPLING:
        dense = run_in("dense")

        def baseline(pixel_values, pixel_mask):
            with transformers_sampling(model):
                return dense(pixel_values, pixel_mask)

        variants[BASELINE], samplings[BASELINE] = baseline, TRANSFORMERS_SAMPLING
    return variants, implementation, samplings


def _file_sampling(path: Path) -> str:
    """The file's gsmlp.sampling (exporter.export.SAMPLING_KEY): "op", "inline", or "" without any."""
    import onnx

    from gsmlp.exporter.export import SAMPLING_KEY

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    held = meta.get(SAMPLING_KEY, "none")
    return "" if held == "none" else held


def _onnxruntime_variants(
    files: dict[str, Path], options: ModelBenchOptions
) -> tuple[Variants, str, Samplings]:
    from gsmlp.validation.backends import OnnxRuntimeBackend

    threads = options.threads or 0  # set by run_model_bench: torch's thread count
    variants: Variants = {}
    # The variants run in turn, image by image: no spinning, or one session's idle threads take the cores
    # from the next session's run (the same for dense and gated).
    gated = files["gated"]
    for name, path in files.items():
        if name != "gated":  # dense files hold no GatedSparseMLP: --ort-op has nothing to choose there
            variants[name] = OnnxRuntimeBackend(path, threads=threads, use_cuda=False, spin=False).run
    gated_backend = OnnxRuntimeBackend(gated, threads=threads, use_cuda=False, op=options.ort_op, spin=False)
    variants["gated"] = gated_backend.run
    if options.ort_threading == "both" and gated_backend.implementation.startswith("gsmlp op library"):
        from gsmlp.runtime.ort_session import open_session

        session = open_session(
            gated_backend.data, op="library", threads=threads, use_cuda=False, threading="openmp",
            spin=False, label=str(gated), external_data_folder=gated_backend.file.folder,
        ).session  # fmt: skip
        variants["gated_openmp"] = lambda v, m: session.run(None, {"pixel_values": v, "pixel_mask": m})
    samplings = {name: _file_sampling(path) for name, path in files.items()}
    samplings.update({name: samplings["gated"] for name in variants if name.startswith("gated")})
    return variants, gated_backend.implementation, samplings


def _export_files(loaded, folder: Path, height: int, width: int) -> dict[str, Path]:
    """dense, gated and, where the files hold the sampling op, the dense file with inline sampling."""
    from gsmlp.exporter.export import ExportOptions, export_onnx

    files = {"dense": folder / "dense.onnx", "gated": folder / "gated.onnx"}
    export_onnx(loaded.model, files["gated"], ExportOptions(height=height, width=width))
    summary = export_onnx(loaded.model, files["dense"], ExportOptions(height=height, width=width, dense=True))
    if summary.sampling_nodes:
        files[BASELINE] = folder / "dense_inline.onnx"
        options = ExportOptions(height=height, width=width, dense=True, sampling="inline")
        export_onnx(loaded.model, files[BASELINE], options)
    return files


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


def _summary(times: dict[str, list[float]], implementation: str, samplings: Samplings) -> dict:
    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}
    entry = {"dense_ms": medians["dense"], "gated_ms": medians["gated"]}
    entry["speedup"] = round(medians["dense"] / medians["gated"], 3)
    if "gated_openmp" in medians:
        entry["gated_openmp_ms"] = medians["gated_openmp"]
        entry["speedup_openmp"] = round(medians["dense"] / medians["gated_openmp"], 3)
    if BASELINE in medians:
        entry["baseline_ms"] = medians[BASELINE]
        entry["speedup_vs_baseline"] = round(medians[BASELINE] / medians["gated"], 3)
    entry["implementation"] = implementation
    entry["variants"] = {
        name: {"ms": ms, "sampling": samplings.get(name, "")} for name, ms in medians.items()
    }
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


def run_model_bench(
    options: ModelBenchOptions,
    progress: Callable[[], None] = lambda: None,
    loaded: LoadedDetector | None = None,
) -> dict:
    """Time every backend's dense and gated detector on the same preprocessed images; the report dict.

    loaded: options.model as the caller loaded it (`gsmlp bench model` loads through the CLI's loader, as
    every command does); None loads it here."""
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.coco_run import coco_batches

    _check(options)
    if options.threads:
        torch.set_num_threads(options.threads)
    options.threads = torch.get_num_threads()  # the same count for ONNX Runtime's intra-op threads
    loaded = loaded if loaded is not None else load_detector(options.model)
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
        files = {"dense": options.onnx_dense, "gated": options.onnx_gated, BASELINE: options.onnx_baseline}
        files = {name: path for name, path in files.items() if path is not None}
        if "onnxruntime" in options.backends and not files:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gsmlp-bench-")))
            files = _export_files(loaded, folder, height, width)
        variants, implementations, samplings = {}, {}, {}
        if "pytorch" in options.backends:
            variants["pytorch"], implementations["pytorch"], samplings["pytorch"] = _pytorch_variants(
                loaded.model
            )
        if "onnxruntime" in options.backends:
            ort = _onnxruntime_variants(files, options)
            variants["onnxruntime"], implementations["onnxruntime"], samplings["onnxruntime"] = ort
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
        "onnx": {name: str(path) for name, path in files.items()}
        if options.onnx_dense
        else "exported for this run (static size above)",
        "backends": {
            name: _summary(times[name], implementations[name], samplings[name]) for name in variants
        },
    }
