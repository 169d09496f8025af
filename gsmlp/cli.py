"""The `gsmlp` command: one entry point, one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gsmlp import __version__
from gsmlp.commands import COMMANDS
from gsmlp.errors import GsmlpError

DESCRIPTION = """\
gsmlp adds activation-sparsity gating to the FFN layers of DETR and Deformable DETR, exports the gated
detector to ONNX with a custom GatedSparseMLP op, builds TensorRT engines whose plugin computes only the
active neurons, and checks with COCO mAP that every backend computes the same detector.

Typical flow:
  gsmlp eval      --model detr-small --data shapes-val
  gsmlp calibrate --model detr-small --data shapes-train --method mgs --out runs/detr-small-mgs
  gsmlp export    --model runs/detr-small-mgs --out runs/gated.onnx
  gsmlp validate  --model runs/detr-small-mgs --onnx runs/gated.onnx --data shapes-val \\
                  --backends pytorch,onnxruntime --report runs/report.json
  gsmlp demo      --out runs/demo        (all of the above on the built-in model)

Every --model takes a Hugging Face DETR/Deformable DETR folder, a facebookresearch/detr .pth, a gsmlp
gated checkpoint folder, or a built-in name (detr-small, deformable-detr-small).
Run `gsmlp COMMAND --help` for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsmlp", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gsmlp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except GsmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopped cleanly; no partial output was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
