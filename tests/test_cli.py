"""The `gsmlp` command: help lists every subcommand; no command prints help and exits 2."""

from __future__ import annotations

import subprocess
import sys

from gsmlp.commands import COMMANDS

ALL_COMMANDS = ("eval", "calibrate", "export", "build", "validate", "bench", "demo")


def _gsmlp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gsmlp", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    result = _gsmlp("--help")
    assert result.returncode == 0
    for name in ALL_COMMANDS:
        assert name in result.stdout
    assert set(ALL_COMMANDS) <= set(COMMANDS)


def test_no_command_prints_help_and_exits_2() -> None:
    result = _gsmlp()
    assert result.returncode == 2
    assert "commands" in result.stdout
