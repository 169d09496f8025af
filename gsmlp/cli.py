"""The `gsmlp` command: one entry point, one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence

from gsmlp import __version__
from gsmlp.commands import COMMANDS
from gsmlp.distributed import prints_error
from gsmlp.errors import GsmlpError
from gsmlp.model.zoo import ACCEPTED_FORMS
from gsmlp.signals import Stopped, signal_name, stop_signals_raise

# Exit statuses besides 0 (success), 1 (an error the message explains) and 2 (bad command line).
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in gsmlp, never a user's mistake
STOPPED_NOTE = "nothing half-written was left, and an output that was not complete was not written"

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

{forms}
Run `gsmlp COMMAND --help` for the options of one command.
""".format(forms=textwrap.fill(f"Every --model takes {ACCEPTED_FORMS}.", 105))


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
    with stop_signals_raise():
        try:
            status = int(args.run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
            return status
        except GsmlpError as exc:
            _say(f"error: {exc}")
            return 1
        except Stopped as stop:
            _say(f"\nstopped by {signal_name(stop.signum)}: {STOPPED_NOTE}.")
            return 128 + stop.signum
        except KeyboardInterrupt:
            _say("\ninterrupted: stopped cleanly; no partial output was written.")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            _silence_stdout()
            _say("error: the output pipe was closed; stopped (no partial output was written)")
            return 1
        except MemoryError:
            _say("error: out of memory; try a smaller --batch-size, image size or --limit")
            return 1
        except OSError as exc:  # the machine's doing (disk full, a device gone): named, not a bug
            where = f"{exc.filename}: " if exc.filename else ""
            _say(f"error: {where}{exc.strerror or exc}")
            return 1
        except Exception as exc:  # the last resort: the tests make sure that no user input reaches it
            return _internal_error(exc)


def _say(text: str) -> None:
    """An error or stop line on stderr; under torchrun only rank 0 says it (it names a failed peer)."""
    if prints_error():
        print(text, file=sys.stderr)


def _silence_stdout() -> None:
    """After a closed pipe, Python's final flush of stdout would print its own traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _internal_error(exc: Exception) -> int:
    _say(
        f"error: internal error, a bug in gsmlp ({type(exc).__name__}: {exc}); please report it with the "
        "command line. Set GSMLP_DEBUG=1 to see where it happened."
    )
    if os.environ.get("GSMLP_DEBUG") == "1":
        traceback.print_exc()
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
