"""`gsmlp demo`'s pipeline: calibrate -> export dense and gated -> build engines -> validate both modes.

Each stage is the library function that its own command calls (calibrate, export_onnx, build_engine,
build_report), with the options that command's defaults give, so the demo computes exactly what a user
would run step by step. Everything is written inside one atomic folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from gsmlp.calibration.options import DEFAULT_TARGET_SPARSITY
from gsmlp.paths import folder_output
from gsmlp.validation.summary import table_rows

CALIBRATION_DATA = "shapes-train"
VALIDATION_DATA = "shapes-val"
# Recorded tokens per FFN: enough for a rank-16 gate on the small models, small enough to stay fast.
RESERVOIR = 4000
# The report's picture: this shapes-val image, its dense and gated detections side by side.
PICTURE, PICTURE_IMAGE = "report_detections.png", "000001.jpg"
# What `gsmlp demo --out DIR` writes; an existing DIR is replaced only if it looks like this.
DEMO_OUTPUT = folder_output(
    "an earlier output of gsmlp demo (report.json, checkpoint/, ...)",
    required=("report.json", "checkpoint"),
    allowed=("report.md", "report_ap.png", "report_sparsity.png", PICTURE, "dense.onnx", "gated.onnx",
             "dense.engine", "gated.engine", "dense.engine.json", "gated.engine.json"),
)  # fmt: skip


@dataclass
class DemoOptions:
    """What `gsmlp demo` runs; the command line derives its defaults from these."""

    out: str | Path = "runs/demo"
    model: str = "detr-small"  # a built-in or dense detector to gate
    calib_limit: int = 64  # shapes-train images to calibrate on
    limit: int = 50  # shapes-val images to validate on
    target_sparsity: float = DEFAULT_TARGET_SPARSITY
    gate_steps: int = 200  # Adam steps per gate: kept short, so that the demo takes about a minute
    tolerances: str | None = None  # parity tolerances (format: docs/VALIDATION.md)
    plugin_lib: str | None = None  # GatedSparseMLP plugin library for the TensorRT builds
    ort_op: str = "auto"  # how ONNX Runtime computes GatedSparseMLP (runtime.ort_session.OP_CHOICES)
    force: bool = False  # replace an output that is not an earlier demo output


def _calibrate(options: DemoOptions, checkpoint: Path) -> None:
    from gsmlp.calibration.options import CalibrationJob, CalibrationOptions
    from gsmlp.calibration.workflow import calibrate

    method = CalibrationOptions(
        method="mgs", target_sparsity=options.target_sparsity, gate_steps=options.gate_steps
    )
    job = CalibrationJob(
        model=options.model, data=CALIBRATION_DATA, out=checkpoint, limit=options.calib_limit,
        reservoir=RESERVOIR, method=method,
    )  # fmt: skip
    calibrate(job)


def _export(loaded, path: Path, mode: str, edge: int) -> None:
    from gsmlp.exporter.export import ExportOptions, export_onnx

    options = ExportOptions(dense=mode == "dense", height=edge, width=edge, preprocess=loaded.preprocess)
    export_onnx(loaded.model, path, options)


def _build_engines(folder: Path, plugin_lib: str | None, steps: dict) -> dict[str, Path | None]:
    from gsmlp.runtime.trt_common import tensorrt_missing

    missing = tensorrt_missing()
    engines: dict[str, Path | None] = {}
    for mode in ("dense", "gated"):
        if missing:
            steps[f"build_{mode}"] = {"status": "skipped", "reason": missing}
            engines[mode] = None
            continue
        from gsmlp.runtime.trt_build import BuildOptions, build_engine

        engine = folder / f"{mode}.engine"
        # block_masks: the engines report their gate decisions, so the tensorrt rows are pinned too.
        build = BuildOptions(
            onnx=folder / f"{mode}.onnx",
            out=engine,
            plugin_lib=Path(plugin_lib) if plugin_lib else None,
            block_masks=True,
        )
        start = time.perf_counter()
        build_engine(build)
        steps[f"build_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        engines[mode] = engine
    return engines


def _draw_detections(folder: Path, ort_op: str) -> dict:
    """PICTURE: one shapes-val image through dense.onnx and gated.onnx in ONNX Runtime, each drawn by the code
    of `gsmlp detect` (runtime.deployed, runtime.draw); returns what the report says about it."""
    from gsmlp.data.shapes import ensure_split
    from gsmlp.runtime.deployed import SHOWN_SCORE, detect_image, open_onnx
    from gsmlp.runtime.draw import draw_detections, save_png, side_by_side
    from gsmlp.runtime.prepare_image import open_rgb

    image_path = ensure_split(VALIDATION_DATA) / "images" / PICTURE_IMAGE
    image = open_rgb(image_path)
    panels, found = [], {}
    for mode in ("dense", "gated"):
        model = open_onnx(folder / f"{mode}.onnx", op=ort_op)
        detections = detect_image(model, image, source=str(image_path), score_threshold=SHOWN_SCORE)
        found[mode] = len(detections.scores)
        panels.append(
            (
                f"{mode}: {found[mode]} detections",
                draw_detections(image, detections, model.metadata.label_name),
            )
        )
    save_png(side_by_side(panels), folder / PICTURE)
    return {
        "file": PICTURE,
        "image": f"{VALIDATION_DATA} {PICTURE_IMAGE}",
        "score": SHOWN_SCORE,
        "detections": found,
    }


def _validate(loaded, folder: Path, mode: str, engine, options: DemoOptions, tolerances) -> dict:
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.validation.session import build_report

    return build_report(
        loaded,
        folder / f"{mode}.onnx",
        resolve_dataset(VALIDATION_DATA, None),
        ["pytorch", "onnxruntime", "tensorrt"],
        limit=options.limit,
        batch_size=1,
        engine=engine,
        plugin_lib=options.plugin_lib,
        tolerances=tolerances,
        ort_op=options.ort_op,
    )


def _published(value, tmp: Path, final: Path):
    """The report names files where they end up, not in the temporary folder they were written to."""
    if isinstance(value, str):
        return value.replace(str(tmp), str(final))
    if isinstance(value, dict):
        return {key: _published(item, tmp, final) for key, item in value.items()}
    if isinstance(value, list):
        return [_published(item, tmp, final) for item in value]
    return value


def assemble_report(modes: dict[str, dict], steps: dict, model: str, picture: dict | None = None) -> dict:
    """The gated validate report at the top (so validate's readers read it), with both modes beside it."""
    gated = modes["gated"]
    return {
        **gated,
        "model": model,
        "pass": all(report["pass"] for report in modes.values()),
        "modes": modes,
        "table": table_rows(modes),
        "steps": steps,
        "picture": picture,
    }


def demo_markdown(report: dict) -> str:
    """The summary table first, then each mode's full validate report."""
    from gsmlp.validation.report_files import report_markdown
    from gsmlp.validation.summary import format_table

    text = f"# gsmlp demo ({report['model']}): {'pass' if report['pass'] else 'FAIL'}\n\n"
    text += "```\n" + format_table(report["table"]) + "\n```\n\n"
    picture = report.get("picture")
    if picture:
        counts = ", ".join(f"{mode} {count}" for mode, count in picture["detections"].items())
        text += (
            f"## Detections on {picture['image']}\n\n![dense and gated detections]({picture['file']})\n\n"
            f"ONNX Runtime on dense.onnx and gated.onnx, score >= {picture['score']}, drawn as "
            f"`gsmlp detect` draws them: {counts} detections.\n\n"
        )
    for mode, mode_report in report["modes"].items():
        text += report_markdown(mode_report).replace("# Validation", f"# {mode}: validation", 1) + "\n"
    return text


def run_demo(options: DemoOptions) -> dict:
    from gsmlp.io import atomic_directory
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.report_files import write_report_set
    from gsmlp.validation.tolerances import load_tolerances

    # Read before the long stages, so that a bad file fails in a second, not after calibration.
    tolerances = load_tolerances(options.tolerances) if options.tolerances else None
    out = Path(options.out)
    steps: dict = {}
    started = time.perf_counter()
    with atomic_directory(out, DEMO_OUTPUT, force=options.force) as folder:
        checkpoint = folder / "checkpoint"
        start = time.perf_counter()
        _calibrate(options, checkpoint)
        steps["calibrate"] = {"status": "ok", "seconds": time.perf_counter() - start}
        # A static canvas that every preprocessed image fits: Deformable DETR cannot export dynamic shapes,
        # and a fixed size lets TensorRT build without an optimization profile.
        # The checkpoint is loaded once: export and validate leave its FFN modes as they found them.
        loaded = load_detector(str(checkpoint))
        edge = loaded.preprocess.longest_edge
        for mode in ("dense", "gated"):
            start = time.perf_counter()
            _export(loaded, folder / f"{mode}.onnx", mode, edge)
            steps[f"export_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        start = time.perf_counter()
        picture = _draw_detections(folder, options.ort_op)
        steps["picture"] = {"status": "ok", "seconds": time.perf_counter() - start}
        engines = _build_engines(folder, options.plugin_lib, steps)
        modes = {}
        for mode in ("dense", "gated"):
            start = time.perf_counter()
            modes[mode] = _validate(loaded, folder, mode, engines[mode], options, tolerances)
            steps[f"validate_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        steps["total_seconds"] = time.perf_counter() - started
        report = _published(assemble_report(modes, steps, options.model, picture), folder, out)
        write_report_set(report, folder / "report.json", demo_markdown(report))
    return report
