"""`gsmlp calibrate`: activation statistics -> SIBS pruning -> MGS gates -> a gated checkpoint."""

from __future__ import annotations

import argparse

from gsmlp.args import (
    BLOCK_SIZE,
    FRACTION,
    MAX_SEED,
    POSITIVE,
    Range,
    add_force_argument,
    add_model_argument,
    check_ranges,
    data_inputs,
    model_input,
)
from gsmlp.calibration.choices import DEFAULT_SWEEP, GATE_LAYERS, LABELS, METHODS, ORDERINGS

HELP = "SIBS static indicators and MGS micro-gates -> gated checkpoint"
DESCRIPTION = """\
Turn a dense detector into a gated one, without retraining it and without labels:

  1. stream --data images through the model and record, per FFN and hidden neuron, how often it fires,
     its mean/max value, neuron co-activation, and a reservoir of token inputs (statistics.safetensors);
  2. SIBS: remove neurons that fired on at most --epsilon of the tokens (the FFN gets narrower);
  3. MGS: permute the hidden neurons so that co-active ones share a block of --block-size, train one
     low-rank micro-gate (--rank) per FFN on the recorded tokens (labels: the model's own activations),
     and set each FFN's threshold on held-out images for --target-sparsity or --target-recall.

DIR then is a gated checkpoint (--model DIR for every other command) holding calibration.json/.md/.png
and the inherent-sparsity analysis (analysis.json/.png). With --eval-data, AP is measured dense and gated,
and the AP-vs-sparsity curve is swept. With --analyze-only, only statistics and analysis are written.

Examples:
  gsmlp calibrate --model detr-small --data shapes-train --method sibs+mgs --target-sparsity 0.9 \\
                  --eval-data shapes-val --out runs/detr-small-mgs
  gsmlp calibrate --model detr-small --data shapes-val --analyze-only --out runs/detr-small-analysis
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data", required=True, help="calibration images: shapes-train, shapes-val or a COCO JSON"
    )
    data.add_argument("--images", metavar="DIR", help="image folder of a COCO JSON --data")
    data.add_argument(
        "--max-images", type=int, default=500, metavar="N", help="calibration images (default 500)"
    )
    data.add_argument("--eval-data", metavar="E", help="measure AP dense and gated on this data set")
    data.add_argument("--eval-images", metavar="DIR", help="image folder of a COCO JSON --eval-data")
    data.add_argument("--eval-max-images", type=int, metavar="N", help="evaluate on at most N images")
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default="sibs+mgs", help="default: sibs+mgs")
    method.add_argument("--analyze-only", action="store_true", help="write statistics and analysis, no gates")
    method.add_argument(
        "--epsilon",
        type=float,
        default=0.0,
        metavar="E",
        help="SIBS: drop neurons firing on <= this fraction of calibration tokens (default 0: never fired)",
    )
    target = method.add_mutually_exclusive_group()
    target.add_argument(
        "--target-sparsity",
        type=float,
        metavar="S",
        help="MGS: fraction of the dense FFN's neurons skipped per token (default 0.9 if no --target-recall)",
    )
    target.add_argument(
        "--target-recall", type=float, metavar="R", help="MGS: fraction of firing neurons that stay computed"
    )
    method.add_argument("--rank", type=int, default=16, metavar="R", help="MGS gate rank (default 16)")
    method.add_argument(
        "--ordering",
        choices=ORDERINGS,
        default="coactivation",
        help="neuron permutation (default coactivation)",
    )
    method.add_argument(
        "--labels",
        choices=LABELS,
        default="magnitude",
        help="gate labels (default magnitude: see docs/CALIBRATION.md)",
    )
    method.add_argument(
        "--gate-layers", choices=GATE_LAYERS, default="all", help="FFNs that get a gate (default all)"
    )
    method.add_argument(
        "--gate-steps", type=int, default=600, metavar="N", help="Adam steps per gate (default 600)"
    )
    method.add_argument(
        "--reservoir", type=int, default=20000, metavar="N", help="recorded tokens per FFN (default 20000)"
    )
    method.add_argument(
        "--threshold-passes",
        type=int,
        default=1,
        metavar="N",
        help="re-fit thresholds on the inputs of the gated model, N passes over the images (default 1)",
    )
    method.add_argument(
        "--sweep",
        metavar="VALUES",
        help="with --eval-data: comma-separated target sparsities (MGS) or epsilons (SIBS) for the AP-vs-"
        f"sparsity curve; '' for none (defaults: MGS {DEFAULT_SWEEP['mgs']}, SIBS {DEFAULT_SWEEP['sibs']})",
    )
    method.add_argument("--seed", type=int, default=0, help="reservoir sampling and gate training seed")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the gated checkpoint folder to write, atomically; an existing DIR is replaced only if it holds "
        "an earlier output of gsmlp calibrate (or with --force)",
    )
    add_force_argument(parser)


RANGES = {
    "block_size": BLOCK_SIZE,
    "max_images": POSITIVE,
    "eval_max_images": POSITIVE,
    "epsilon": Range(0.0, 1.0, high_open=True),
    "target_sparsity": FRACTION,
    "target_recall": FRACTION,
    "rank": Range(1, 4096),
    "gate_steps": POSITIVE,
    "reservoir": POSITIVE,
    "threshold_passes": Range(0),
    "seed": Range(0, MAX_SEED),
}


def check_args(args: argparse.Namespace) -> None:
    """Numbers in range and every output path safe to write, before a model is loaded."""
    from gsmlp.calibration.workflow import CALIBRATE_OUTPUT, sweep_values
    from gsmlp.paths import OutputPlan

    check_ranges(args, RANGES)
    sweep_values(args)
    plan = OutputPlan(force=args.force)
    plan.folder(args.out, "--out", CALIBRATE_OUTPUT)
    inputs = {"--model": model_input(args.model), **data_inputs(args.data, args.images)}
    plan.check({**inputs, **data_inputs(args.eval_data, args.eval_images, prefix="eval-")})


def run(args: argparse.Namespace) -> int:
    # Imported here: the workflow needs torch and transformers, `gsmlp --help` needs neither.
    from gsmlp.calibration.workflow import calibrate_from_args

    check_args(args)
    return calibrate_from_args(args)
