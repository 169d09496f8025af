"""`gsmlp eval`: COCO box metrics and per-layer FFN sparsity of a detector on a dataset."""

from __future__ import annotations

import argparse
import datetime
import sys
import textwrap
import time

import torch

from gsmlp.args import (
    BATCH,
    BLOCK_SIZE,
    POSITIVE,
    THREADS,
    add_data_arguments,
    add_device_argument,
    add_force_argument,
    add_model_argument,
    check_device,
    check_ranges,
    data_inputs,
    load_model_from_args,
    model_input,
)
from gsmlp.data.coco import CocoDataset, resolve_dataset
from gsmlp.data.evaluate import coco_metrics, detect, format_metrics
from gsmlp.distributed import Group
from gsmlp.errors import GsmlpError
from gsmlp.io import write_json_atomic
from gsmlp.model.zoo import ACCEPTED_FORMS
from gsmlp.paths import OutputPlan, json_output

HELP = "evaluate a detector with COCO metrics and FFN sparsity"
DESCRIPTION = """\
Run a detector over a dataset, score its boxes with pycocotools (AP, AP50, AP75, APs, APm, APl in
points 0-100) and measure how many FFN hidden neurons each encoder and decoder layer skipped.

{forms}
--data takes a generated split (shapes-train, shapes-val: made on first use in $GSMLP_CACHE, default
~/.cache/gsmlp/datasets) or a COCO instances JSON together with --images DIR.

Modes (how each FFN runs):
  dense   the original model, every neuron computed
  static  the SIBS-pruned FFNs, every remaining neuron computed (needs a gated checkpoint)
  gated   the SIBS-pruned FFNs with their MGS micro-gates (needs a gated checkpoint); an FFN calibrated
          without a gate stays static (`gsmlp calibrate` gates the encoder's FFNs only, by default)
  oracle  exactly the blocks that hold a non-zero activation: the bound any gate can reach

Timing: model ms per image, and how much of it the FFNs take (timing.ffn_share in the report). That share
bounds what FFN sparsity can gain end to end; compare --mode dense and --mode gated on the same model.
Neither figure includes the sparsity meters' own counting (timing.metering_s).

Examples:
  gsmlp eval --model detr-small --data shapes-val
  gsmlp eval --model runs/detr-small-mgs --data shapes-val --mode gated --report runs/eval.json
  gsmlp eval --model my-detr/ --data annotations/instances_val2017.json --images val2017/ --limit 50
  torchrun --nproc-per-node 8 -m gsmlp eval --model my-detr/ --data instances_val2017.json \\
      --images val2017/ --device cuda        # one shard per GPU; the metrics of one process
""".format(forms=textwrap.fill(f"--model takes {ACCEPTED_FORMS}.", 105))
MODES = ("dense", "static", "gated", "oracle")
EVAL_REPORT = json_output("a report written by gsmlp eval", ("metrics", "ffn_sparsity", "timing"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_data_arguments(parser, what="images to evaluate")
    parser.add_argument("--mode", choices=MODES, default="dense", help="how the FFNs run (default: dense)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_device_argument(parser)
    parser.add_argument("--report", metavar="FILE.json", help="write the JSON report here (atomically)")
    add_force_argument(parser)


def _check_args(args: argparse.Namespace) -> None:
    """Options and paths, before the model is loaded: a mistake costs a second, never a whole run."""
    check_ranges(args, {"batch_size": BATCH, "limit": POSITIVE, "threads": THREADS, "block_size": BLOCK_SIZE})
    plan = OutputPlan(force=args.force)
    if args.report:
        plan.file(args.report, "--report", EVAL_REPORT)
    plan.check({"--model": model_input(args.model), **data_inputs(args.data, args.images)})
    check_device(args)


def _set_mode(detector, mode: str) -> None:
    from gsmlp.model.wrap import reset_sparsity, set_mode

    if mode in ("static", "gated") and not detector.gated:
        raise GsmlpError(
            f"--mode {mode} needs a gated checkpoint (made by `gsmlp calibrate`); "
            f"{detector.source} is a plain detector: use --mode dense or oracle"
        )
    if mode == "gated":
        _set_gated(detector)
    else:
        try:
            set_mode(detector.model, mode)
        except ValueError as exc:
            raise GsmlpError(f"--mode {mode} with {detector.source}: {exc}") from None
    reset_sparsity(detector.model)


def _set_gated(detector) -> None:
    """Every FFN with a gate gated, the others static: the checkpoint as it was calibrated."""
    from gsmlp.model.wrap import gated_layers

    layers = list(gated_layers(detector.model))
    if not any(layer.gate is not None for _, layer in layers):
        raise GsmlpError(
            f"--mode gated: no FFN of {detector.source} has a gate (it was calibrated with --method sibs); "
            "use --mode static, or calibrate with --method mgs or sibs+mgs"
        )
    for _, layer in layers:
        layer.set_mode("gated" if layer.gate is not None else "static")


def _warn_label_range(detector, dataset: CocoDataset) -> None:
    num_labels = getattr(detector.model.config, "num_labels", None)
    top = max(dataset.category_ids, default=0)
    if num_labels is not None and top >= num_labels:
        print(
            f"warning: {dataset.name} has category ids up to {top}, but the model predicts class indices "
            f"0..{num_labels - 1}; categories above that can never be detected",
            file=sys.stderr,
        )


def _sparsity_line(sparsity: dict) -> str:
    return (
        f"FFN neurons skipped: encoder {100 * sparsity['encoder']:.1f} %, "
        f"decoder {100 * sparsity['decoder']:.1f} %"
        f"  |  zero ReLU outputs: encoder {100 * sparsity['encoder_activation_sparsity']:.1f} %, "
        f"decoder {100 * sparsity['decoder_activation_sparsity']:.1f} %"
    )


def _timing(model, measured_seconds: float, images: int, batch_size: int) -> dict:
    """Model and FFN time without the sparsity meters' counting, which is eval's, not the model's work."""
    from gsmlp.model.wrap import ffn_seconds, metering_seconds

    metering = metering_seconds(model)
    model_seconds = max(0.0, measured_seconds - metering)
    ffn = ffn_seconds(model)
    per_image = 1000 / max(1, images)
    return {
        "model_s": round(model_seconds, 3),
        "metering_s": round(metering, 3),
        "model_ms_per_image": round(model_seconds * per_image, 2),
        # The FFNs' share bounds what FFN sparsity can gain end to end (docs/PERFORMANCE.md).
        "ffn_ms_per_image": round(ffn * per_image, 2),
        "ffn_share": round(ffn / model_seconds, 4) if model_seconds else 0.0,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
    }


def _timing_line(timing: dict) -> str:
    return (
        f"time: model {timing['model_ms_per_image']:.2f} ms/image, of which FFNs "
        f"{timing['ffn_ms_per_image']:.2f} ms ({100 * timing['ffn_share']:.1f} %)"
    )


def run(args: argparse.Namespace) -> int:
    from gsmlp.distributed import process_group

    _check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    with process_group(args.device) as group:
        return _evaluate(args, group)


def _evaluate(args: argparse.Namespace, group: Group) -> int:
    """Each rank scores its contiguous shard of the images; rank 0 gathers them and computes COCO metrics
    once, over every image, so any world size gives the metrics of one process."""
    from gsmlp.model.wrap import sum_sparsity

    started = time.perf_counter()
    with group.together("loading the model and data"):
        dataset = resolve_dataset(args.data, args.images)
        detector = load_model_from_args(args)
        detector.model.to(group.torch_device(args.device))
        _set_mode(detector, args.mode)
        if group.is_main:
            _warn_label_range(detector, dataset)
    with group.together("evaluating its shard of the images"):
        ids = dataset.image_ids if args.limit is None else dataset.image_ids[: args.limit]
        shard = dataset.subset(group.shard(ids))
        found, model_seconds = detect(detector, shard, args.batch_size, None, progress_bar=group.is_main)
    sum_sparsity(detector.model, group)
    gathered = group.gather((found, shard.unreadable, model_seconds))
    with group.together("scoring and writing the report"):
        if gathered is not None:
            _score(args, detector, dataset, gathered, group, started)
    return 0


def _score(args, detector, dataset: CocoDataset, gathered: list, group: Group, started: float) -> None:
    from gsmlp.model.wrap import sparsity_report

    detections = {image_id: found for part, _, _ in gathered for image_id, found in part.items()}
    dataset.unreadable = [name for _, names, _ in gathered for name in names]
    if not detections:
        raise dataset.usable_images_error(args.limit)
    metrics = coco_metrics(dataset, detections)
    notes = metrics.pop("notes")
    if dataset.unreadable:
        notes.append(f"{len(dataset.unreadable)} unreadable images skipped: {', '.join(dataset.unreadable)}")
    sparsity = sparsity_report(detector.model)
    # Seconds summed over ranks: per-image figures are each process's cost, whatever the world size.
    model_seconds = sum(seconds for _, _, seconds in gathered)
    timing = _timing(detector.model, model_seconds, len(detections), args.batch_size)
    total_seconds = time.perf_counter() - started
    distributed = group.report([len(part) for part, _, _ in gathered])
    if group.distributed:
        timing["model_s_per_rank"] = [round(seconds, 3) for _, _, seconds in gathered]
        distributed["images_per_second"] = round(len(detections) / total_seconds, 3)
    print(
        format_metrics(
            metrics, f"{detector.source} on {dataset.name}, {len(detections)} images, mode {args.mode}"
        )
    )
    print(_sparsity_line(sparsity))
    print(_timing_line(timing))
    if group.distributed:
        print(f"ranks: {group.world_size} ({group.backend}), images {distributed['images_per_rank']}")
    for note in notes:
        print(f"note: {note}")
    if args.report:
        report = {
            "model": detector.source,
            "family": detector.family,
            "data": dataset.name,
            "annotations": str(dataset.annotation_file),
            "mode": args.mode,
            "device": args.device,
            "images": len(detections),
            "skipped_images": dataset.unreadable,
            "metrics": metrics,
            "notes": notes,
            "ffn_sparsity": sparsity,
            "timing": {"total_s": round(total_seconds, 3), **timing},
            "distributed": distributed,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(args.report, report)
        print(f"report: {args.report}")
