"""The `gsmlp` command: one entry point, one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import io as io_module
import os
import shlex
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from typing import TextIO

from gsmlp import __version__, io, locks, watch
from gsmlp.commands import COMMANDS
from gsmlp.distributed import is_rank_zero
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
  gsmlp detect    --onnx runs/gated.onnx photo.jpg --out runs/detections   (boxes drawn on your image)
  gsmlp demo      --out runs/demo        (all of the above on the built-in model)

{forms}
Run `gsmlp COMMAND --help` for the options of one command.
""".format(forms=textwrap.fill(f"Every --model takes {ACCEPTED_FORMS}.", 105))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, the modules of the other commands are not imported.

    A command runs with only its own imports: `gsmlp detect --onnx` must not import torch, which some other
    commands' modules do at their top.
    """
    parser = argparse.ArgumentParser(
        prog="gsmlp", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gsmlp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            subparsers.add_parser(name)  # still a known name, for argparse's messages
            continue
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
    argv = list(sys.argv[1:] if argv is None else argv)
    with guarded_streams() as stdout:
        parser = build_parser(only=argv[0] if argv and argv[0] in COMMANDS else None)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        locks.command_line = shlex.join(["gsmlp", *argv])
        try:
            status = _run(args)
        finally:
            locks.release_all()
            watch.forget()
        return _after_closed_stdout(stdout, status)


def _run(args: argparse.Namespace) -> int:
    """The command, with every way it can end turned into an exit status and one message."""
    io.published.clear()
    with stop_signals_raise():
        try:
            status = int(args.run(args) or 0)
            if status == 0 and not io.published:
                watch.check_unchanged()  # what was printed came from the inputs as they were at the start
            sys.stdout.flush()
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
    if is_rank_zero():
        print(text, file=sys.stderr)


class _GuardedStream(io_module.TextIOBase):
    """stdout or stderr that never fails a run: once its reader is gone (a closed pipe, a closed file
    descriptor), what gsmlp prints is dropped and `lost` says why."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.stream = stream
        self.lost: str | None = None if stream is not None else "stdout was closed before gsmlp started"

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                self.stream.write(text)
            except (OSError, ValueError) as exc:
                self._lose(exc)
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as exc:
                self._lose(exc)

    def _lose(self, exc: Exception) -> None:
        pipe = isinstance(exc, BrokenPipeError)
        self.lost = "the output pipe was closed" if pipe else f"writing to stdout failed ({exc})"
        _silence(self.stream)

    def isatty(self) -> bool:
        return self.lost is None and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io_module.UnsupportedOperation("no stream")
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def _silence(stream: TextIO | None) -> None:
    """After a closed pipe, Python's final flush of the stream would print its own traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (AttributeError, OSError, ValueError):
        pass


def _names_as_bytes(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Print a file name that is not valid UTF-8 (Python holds its bytes as surrogates) as the bytes it is;
    anything else the stream's encoding lacks, as a backslash escape."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), exc.end
    return codecs.backslashreplace_errors(exc)


codecs.register_error("gsmlp.names", _names_as_bytes)


@contextlib.contextmanager
def guarded_streams() -> Iterator[_GuardedStream]:
    """stdout and stderr that take any file name and never raise, for the span of one command."""
    saved = sys.stdout, sys.stderr
    for stream in saved:
        with contextlib.suppress(AttributeError, ValueError, io_module.UnsupportedOperation):
            stream.reconfigure(errors="gsmlp.names")
    sys.stdout, sys.stderr = _GuardedStream(saved[0]), _GuardedStream(saved[1])
    try:
        yield sys.stdout
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = saved


def _after_closed_stdout(stdout: _GuardedStream, status: int) -> int:
    """A closed stdout loses only what gsmlp prints: a command that published its outputs keeps its exit
    status; one whose output was what it printed (info, eval without --report) failed."""
    if stdout.lost is None:
        return status
    if io.published:
        shown = ", ".join(map(str, io.published[:3]))
        print(f"note: {stdout.lost}; what gsmlp printed was lost, its outputs are complete: {shown}",
              file=sys.stderr)  # fmt: skip
        return status
    print(f"error: {stdout.lost}; what this command prints is its output, and it was lost",
          file=sys.stderr)  # fmt: skip
    return 1 if status == 0 else status


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
