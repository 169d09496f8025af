"""A small workspace of real files for the tests of issue 27: a tiny DETR folder, a gated checkpoint made
from it, three generated JPEGs with their COCO annotations, and the gated and dense ONNX exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from gsmlp.cli import main
from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.model.configs import tiny_config
from tests.conftest import FAMILIES
from tests.test_validate import gated_checkpoint

SMALL_IMAGES = {"size": {"shortest_edge": 96, "longest_edge": 128}}
DATA = ["--data", "data/annotations.json", "--images", "data/images"]
VALIDATE = ["validate", "--model", "gated", *DATA, "--onnx", "gated.onnx"]
EVAL = ["eval", "--model", "model", *DATA, "--limit", "1"]
CALIBRATE = ["calibrate", "--model", "model", *DATA, "--block-size", "16", "--rank", "4"]
CALIBRATE += ["--reservoir", "300"]


def make_workspace(root: Path) -> Path:
    torch.manual_seed(0)
    FAMILIES["detr"](tiny_config("detr")).eval().save_pretrained(root / "model")
    (root / "model" / "preprocessor_config.json").write_text(json.dumps(SMALL_IMAGES))
    gated_checkpoint(root, "detr")  # root/gated
    write_split(SplitSpec("tiny", 3, seed=9), root / "data", show_progress=False)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["export", "--model", "gated", "--out", "gated.onnx", "--dynamic"]) == 0
        assert main(["export", "--model", "gated", "--out", "dense.onnx", "--dynamic", "--dense"]) == 0
    finally:
        os.chdir(cwd)
    return root


def gsmlp_process(argv: list, cwd: Path, **kwargs) -> subprocess.Popen:
    """`gsmlp ARGV` as its own process (arguments may be bytes: names that are not UTF-8)."""
    return subprocess.Popen([sys.executable, "-m", "gsmlp", *argv], cwd=cwd, **kwargs)


def run_gsmlp(argv: list, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "gsmlp", *argv], cwd=cwd, timeout=timeout, **kwargs)


def wait_for(condition, process: subprocess.Popen | None = None, seconds: float = 120) -> None:
    """Poll `condition` until it holds (or `process` ended)."""
    for _ in range(int(seconds * 20)):
        if condition() or (process is not None and process.poll() is not None):
            return
        subprocess.run(["sleep", "0.05"], check=True)
