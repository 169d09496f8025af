"""`gsmlp demo`'s pipeline: calibrate -> export dense and gated -> build engines -> validate both modes.

Each stage goes through the same code as its own command (the CLI parser builds its options), so the demo
shows exactly what a user would run step by step. Everything is written inside one atomic folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gsmlp.errors import GsmlpError
from gsmlp.paths import folder_output
from gsmlp.validation.summary import table_rows

CALIBRATION_DATA = "shapes-train"
VALIDATION_DATA = "shapes-val"
# Recorded tokens per FFN: enough for a rank-16 gate on the small models, small enough to stay fast.
RESERVOIR = 4000
# What `gsmlp demo --out DIR` writes; an existing DIR is replaced only if it looks like this.
DEMO_OUTPUT = folder_output(
    "an earlier output of gsmlp demo (report.json, checkpoint/, ...)",
    required=("report.json", "checkpoint"),
    allowed=("report.md", "report_ap.png", "report_sparsity.png", "dense.onnx", "gated.onnx", "dense.engine",
             "gated.engine", "dense.engine.json", "gated.engine.json"),
)  # fmt: skip


def _command(argv: list[str]) -> int:
    """Run one gsmlp subcommand in-process (its errors propagate as GsmlpError)."""
    from gsmlp.cli import build_parser

    args = build_parser().parse_args(argv)
    status = int(args.run(args) or 0)
    if status != 0:
        raise GsmlpError(f"`gsmlp {' '.join(argv)}` exited with status {status}")
    return status


def tensorrt_missing() -> str | None:
    """Why TensorRT engines cannot be built or run here, or None when they can."""
    from gsmlp.runtime.trt_common import import_pycuda, import_tensorrt

    try:
        import_tensorrt()
        import_pycuda()
    except GsmlpError as exc:
        return str(exc)
    return None


def _build_engines(folder: Path, plugin_lib: str | None, steps: dict) -> dict[str, Path | None]:
    missing = tensorrt_missing()
    engines: dict[str, Path | None] = {}
    for mode in ("dense", "gated"):
        if missing:
            steps[f"build_{mode}"] = {"status": "skipped", "reason": missing}
            engines[mode] = None
            continue
        engine = folder / f"{mode}.engine"
        # --block-masks: the engines report their gate decisions, so the tensorrt rows are pinned too.
        argv = ["build", "--onnx", str(folder / f"{mode}.onnx"), "--out", str(engine), "--block-masks"]
        start = time.perf_counter()
        _command(argv + (["--plugin-lib", plugin_lib] if plugin_lib else []))
        steps[f"build_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        engines[mode] = engine
    return engines


def _validate(checkpoint: Path, folder: Path, mode: str, engine, args, tolerances) -> dict:
    from gsmlp.data.coco import resolve_dataset
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.session import build_report

    # A fresh load per mode: validating the dense file switches the model's FFNs to dense.
    loaded = load_detector(str(checkpoint))
    return build_report(
        loaded,
        folder / f"{mode}.onnx",
        resolve_dataset(VALIDATION_DATA, None),
        ["pytorch", "onnxruntime", "tensorrt"],
        limit=args.val_images,
        batch_size=1,
        engine=engine,
        plugin_lib=args.plugin_lib,
        tolerances=tolerances,
        ort_op=args.ort_op,
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


def assemble_report(modes: dict[str, dict], steps: dict, model: str) -> dict:
    """The gated validate report at the top (so validate's readers read it), with both modes beside it."""
    gated = modes["gated"]
    return {
        **gated,
        "model": model,
        "pass": all(report["pass"] for report in modes.values()),
        "modes": modes,
        "table": table_rows(modes),
        "steps": steps,
    }


def demo_markdown(report: dict) -> str:
    """The summary table first, then each mode's full validate report."""
    from gsmlp.validation.report_files import report_markdown
    from gsmlp.validation.summary import format_table

    text = f"# gsmlp demo ({report['model']}): {'pass' if report['pass'] else 'FAIL'}\n\n"
    text += "```\n" + format_table(report["table"]) + "\n```\n\n"
    for mode, mode_report in report["modes"].items():
        text += report_markdown(mode_report).replace("# Validation", f"# {mode}: validation", 1) + "\n"
    return text


def run_demo(args: argparse.Namespace) -> dict:
    from gsmlp.io import atomic_directory, write_json_atomic
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.report_files import write_report_files
    from gsmlp.validation.tolerances import load_tolerances

    # Read before the long stages, so that a bad file fails in a second, not after calibration.
    tolerances = load_tolerances(args.tolerances) if args.tolerances else None
    out = Path(args.out)
    steps: dict = {}
    started = time.perf_counter()
    with atomic_directory(out, DEMO_OUTPUT, force=getattr(args, "force", False)) as folder:
        checkpoint = folder / "checkpoint"
        start = time.perf_counter()
        _command(
            [
                "calibrate",
                "--model",
                args.model,
                "--data",
                CALIBRATION_DATA,
                "--max-images",
                str(args.calib_images),
            ]
            + ["--method", "mgs", "--target-sparsity", str(args.target_sparsity)]
            + ["--gate-steps", str(args.gate_steps), "--reservoir", str(RESERVOIR), "--out", str(checkpoint)]
        )
        steps["calibrate"] = {"status": "ok", "seconds": time.perf_counter() - start}
        # A static canvas that every preprocessed image fits: Deformable DETR cannot export dynamic shapes,
        # and a fixed size lets TensorRT build without an optimization profile.
        edge = str(load_detector(str(checkpoint)).preprocess.longest_edge)
        for mode in ("dense", "gated"):
            start = time.perf_counter()
            argv = ["export", "--model", str(checkpoint), "--out", str(folder / f"{mode}.onnx")]
            _command(argv + ["--height", edge, "--width", edge] + (["--dense"] if mode == "dense" else []))
            steps[f"export_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        engines = _build_engines(folder, args.plugin_lib, steps)
        modes = {}
        for mode in ("dense", "gated"):
            start = time.perf_counter()
            modes[mode] = _validate(checkpoint, folder, mode, engines[mode], args, tolerances)
            steps[f"validate_{mode}"] = {"status": "ok", "seconds": time.perf_counter() - start}
        steps["total_seconds"] = time.perf_counter() - started
        report = _published(assemble_report(modes, steps, args.model), folder, out)
        write_json_atomic(folder / "report.json", report)
        write_report_files(report, folder / "report.json", demo_markdown(report))
    return report
