"""`gsmlp calibrate`: activation statistics -> SIBS pruning -> MGS gates -> a gated checkpoint."""

from __future__ import annotations

import argparse

from gsmlp.args import (
    BLOCK_SIZE,
    FRACTION,
    MAX_SEED,
    POSITIVE,
    Range,
    add_data_arguments,
    add_device_argument,
    add_force_argument,
    add_model_argument,
    check_device,
    check_ranges,
    data_inputs,
    field_defaults,
    from_args,
    load_model_from_args,
    model_input,
)
from gsmlp.calibration.choices import DEFAULT_SWEEP, GATE_LAYERS, LABELS, METHODS, ORDERINGS
from gsmlp.calibration.options import DEFAULT_TARGET_SPARSITY, CalibrationJob, CalibrationOptions

# Every default comes from the option dataclasses the library takes (one home for each).
METHOD = CalibrationOptions()
JOB = field_defaults(CalibrationJob)

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
  torchrun --nproc-per-node 8 -m gsmlp calibrate --model my-detr/ --data instances_train2017.json \\
      --images train2017/ --limit 2000 --device cuda --out runs/my-detr-mgs   # docs/SCALING.md
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser, what="calibration images", limit=JOB["limit"], old_limits=("--max-images",))
    add_data_arguments(
        parser, prefix="eval-", what="measure AP dense and gated on", required=False,
        old_limits=("--eval-max-images",),
    )  # fmt: skip
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default=METHOD.method, help=f"default: {METHOD.method}")
    method.add_argument("--analyze-only", action="store_true", help="write statistics and analysis, no gates")
    method.add_argument(
        "--epsilon",
        type=float,
        default=METHOD.epsilon,
        metavar="E",
        help="SIBS: drop neurons firing on <= this fraction of calibration tokens "
        f"(default {METHOD.epsilon:g}: never fired)",
    )
    target = method.add_mutually_exclusive_group()
    target.add_argument(
        "--target-sparsity",
        type=float,
        metavar="S",
        help="MGS: fraction of the dense FFN's neurons skipped per token "
        f"(default {DEFAULT_TARGET_SPARSITY} if no --target-recall)",
    )
    target.add_argument(
        "--target-recall", type=float, metavar="R", help="MGS: fraction of firing neurons that stay computed"
    )
    method.add_argument(
        "--rank", type=int, default=METHOD.rank, metavar="R", help=f"MGS gate rank (default {METHOD.rank})"
    )
    method.add_argument(
        "--ordering",
        choices=ORDERINGS,
        default=METHOD.ordering,
        help=f"neuron permutation (default {METHOD.ordering})",
    )
    method.add_argument(
        "--labels",
        choices=LABELS,
        default=METHOD.labels,
        help=f"gate labels (default {METHOD.labels}: see docs/CALIBRATION.md)",
    )
    method.add_argument(
        "--gate-layers",
        choices=GATE_LAYERS,
        default=METHOD.gate_layers,
        help=f"FFNs that get a gate (default {METHOD.gate_layers}: the decoder's FFNs see only the object "
        "queries, a small share of the work, and cost the most AP when gated; docs/CALIBRATION.md)",
    )
    method.add_argument(
        "--gate-steps",
        type=int,
        default=METHOD.gate_steps,
        metavar="N",
        help=f"Adam steps per gate (default {METHOD.gate_steps})",
    )
    method.add_argument(
        "--reservoir",
        type=int,
        default=JOB["reservoir"],
        metavar="N",
        help=f"recorded tokens per FFN (default {JOB['reservoir']})",
    )
    method.add_argument(
        "--threshold-passes",
        type=int,
        default=METHOD.threshold_passes,
        metavar="N",
        help="re-fit thresholds on the inputs of the gated model, N passes over the images "
        f"(default {METHOD.threshold_passes})",
    )
    method.add_argument(
        "--sweep",
        metavar="VALUES",
        help="with --eval-data: comma-separated target sparsities (MGS) or epsilons (SIBS) for the AP-vs-"
        f"sparsity curve; '' for none (defaults: MGS {DEFAULT_SWEEP['mgs']}, SIBS {DEFAULT_SWEEP['sibs']})",
    )
    method.add_argument(
        "--sweep-cache-mb",
        type=float,
        default=JOB["sweep_cache_mb"],
        metavar="MB",
        help="with --eval-data: the evaluations (dense, gated, each sweep point) run the backbone and input "
        "projections once per image and hold their outputs in up to MB of memory (images beyond it are "
        "recomputed each time); 0 for no cache (default %(default)g; docs/SCALING.md gives MB per image)",
    )
    method.add_argument(
        "--seed", type=int, default=METHOD.seed, help="reservoir sampling and gate training seed"
    )
    add_device_argument(parser)
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
    "limit": POSITIVE,
    "eval_limit": POSITIVE,
    "epsilon": Range(0.0, 1.0, high_open=True),
    "target_sparsity": FRACTION,
    "target_recall": FRACTION,
    "rank": Range(1, 4096),
    "gate_steps": POSITIVE,
    "reservoir": POSITIVE,
    "threshold_passes": Range(0),
    "sweep_cache_mb": Range(0.0, 1 << 30),
    "seed": Range(0, MAX_SEED),
}


def job_from_args(args: argparse.Namespace) -> CalibrationJob:
    target_sparsity = args.target_sparsity
    if target_sparsity is None and args.target_recall is None:
        target_sparsity = DEFAULT_TARGET_SPARSITY
    method = from_args(CalibrationOptions, args, target_sparsity=target_sparsity)
    return from_args(CalibrationJob, args, method=method)


def check_args(args: argparse.Namespace) -> CalibrationJob:
    """Numbers in range and every output path safe to write, before a model is loaded."""
    from gsmlp.calibration.workflow import CALIBRATE_OUTPUT, check_job
    from gsmlp.paths import OutputPlan

    check_ranges(args, RANGES)
    job = job_from_args(args)
    check_job(job)
    plan = OutputPlan(force=args.force)
    plan.folder(args.out, "--out", CALIBRATE_OUTPUT)
    inputs = {"--model": model_input(args.model), **data_inputs(args.data, args.images)}
    plan.check({**inputs, **data_inputs(args.eval_data, args.eval_images, prefix="eval-")})
    check_device(args)
    return job


def run(args: argparse.Namespace) -> int:
    # Imported here: the workflow needs torch and transformers, `gsmlp --help` needs neither.
    from gsmlp.calibration.workflow import calibrate
    from gsmlp.distributed import process_group

    job = check_args(args)
    with process_group(args.device) as group:
        with group.together("loading the model"):
            detector = load_model_from_args(args)
        written = calibrate(job, group, detector)
        if not group.is_main:
            return 0
    if written == "analysis":
        print(f"wrote the activation analysis to {args.out}")
    else:
        print(f"wrote the gated checkpoint and calibration report to {args.out}")
    return 0
