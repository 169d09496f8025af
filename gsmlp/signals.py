"""Stop requests as exceptions: every signal that would end gsmlp and that a process can catch.

By default SIGTERM, SIGHUP and their kind end a process on the spot, leaving its temporary files behind.
While `stop_signals_raise()` is active they raise `Stopped` instead (a KeyboardInterrupt, so that no
`except Exception` swallows it), and the `finally` blocks of gsmlp.io remove what was half-written.
`signals_held()` defers them across the few steps that must not be split (publishing, cleaning up): the
handler notes a signal that arrives meanwhile, and `Stopped` is raised when the step is done. (Blocking
the signal with pthread_sigmask would not do: the kernel hands it to another thread, ONNX Runtime's or
OpenMP's, and Python still runs the handler in the main thread at once.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# Signals whose default action ends the process. Left out: those a fault raises synchronously (SIGSEGV and
# the like: the process state is gone), SIGABRT (raised by a library that gave up) and SIGKILL/SIGSTOP, which
# nothing can catch.
_NAMES = (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU", "SIGXFSZ",
    "SIGVTALRM", "SIGPROF", "SIGPOLL", "SIGPWR", "SIGSTKFLT",
)  # fmt: skip


def stop_signals() -> list[int]:
    """The catchable signals that end a process by default, real-time ones included."""
    found = {int(getattr(signal, name)) for name in _NAMES if hasattr(signal, name)}
    if hasattr(signal, "SIGRTMIN"):
        found.update(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
    return sorted(found & {int(s) for s in signal.valid_signals()})


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal; nothing half-written is left behind."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_held = 0  # how many signals_held() blocks the main thread is inside
_pending: list[int] = []  # stop signals that arrived while held


def _raise_stopped(signum: int, _frame: object) -> None:
    if _held:
        _pending.append(signum)
        return
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Turn every stop signal still at its default action into `Stopped`; restore the handlers after.

    A signal the caller ignores (nohup ignores SIGHUP) or handles itself keeps its disposition.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in stop_signals():
        current = signal.getsignal(signum)
        if current is signal.SIG_DFL or (signum == signal.SIGINT and current is signal.default_int_handler):
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back stop signals for a short critical step; one that arrived meanwhile is raised after it."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    if not _held and _pending:
        signum = _pending[0]
        _pending.clear()
        raise Stopped(signum)
