"""Parity of a full-size Deformable-DETR-R50 with the sampling op, on real COCO images (see --help).

An experiment, not part of gsmlp: its figures are in docs/VALIDATION.md ("Deformable-DETR-R50 at 480 x 640
with the sampling op"). It builds the slow test's model (random weights and gates, thresholds set clear of
the logits; tests/test_export_sampling.py::test_full_size_sampling_nodes_on_real_images), exports it dense
and gated with the MultiScaleDeformableAttention node, and validates each file through the op library and
through the function body with the gate decisions pinned, printing the fp64-referenced ratios.
`--no-padding-fix` leaves out the padding fix that every model gsmlp loads has (the test's own model).

    python benchmarks/msda_r50_parity.py
    python benchmarks/msda_r50_parity.py --no-padding-fix
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the test helpers build the slow test's model

from gsmlp.exporter.export import ExportOptions, export_onnx  # noqa: E402
from gsmlp.model.padding import make_padding_invariant  # noqa: E402
from gsmlp.model.wrap import set_mode  # noqa: E402
from gsmlp.validation.harness import InputBatch  # noqa: E402
from tests.conftest import coco_subset_dir  # noqa: E402
from tests.test_export_real_images import coco_canvas_batch, full_size_gated, thresholds_clear_of_logits  # noqa: E402
from tests.test_export_sampling import _pinned_parity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--images", type=int, default=2, help="real COCO images on the canvas (default: 2)")
    parser.add_argument("--no-padding-fix", action="store_true", help="the model without the padding fix")
    args = parser.parse_args()
    for dense in (False, True):
        model = full_size_gated("deformable-detr")
        if not args.no_padding_fix:
            make_padding_invariant(model)
        pixel_values, pixel_mask = coco_canvas_batch(coco_subset_dir(), args.images, args.height, args.width)
        thresholds_clear_of_logits(model, pixel_values, pixel_mask)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "r50.onnx"
            options = ExportOptions(height=args.height, width=args.width, batch=args.images, dense=dense)
            export_onnx(model, path, options)
            if dense:
                set_mode(model, "dense")
            for op in ("library", "function"):
                batches = [InputBatch(pixel_values, pixel_mask)]
                report = _pinned_parity(model, path, batches, "deformable-detr", op)
                _print(("dense" if dense else "gated"), report)


def _print(mode: str, report: dict) -> None:
    parity = report["parity"]["onnxruntime"]
    ratios = ", ".join(
        f"{name} {entry['ratio_quantile']:.2f} / {entry['ratio_max']:.2f}"
        for name, entry in parity["precision"]["outputs"].items()
    )
    decisions = parity["gate_decisions"]
    flips = "-" if decisions is None else f"{decisions['flipped']} of {decisions['decisions']}"
    print(
        f"{mode} {report['implementation']}: max scaled diff {parity['max_scaled_diff']:.2g}, ratio q / max "
        f"{ratios}, flips {flips}, agreement {parity['detection_agreement']['agreement']:.3f}, "
        f"{'pass' if parity['pass'] else 'FAIL'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
