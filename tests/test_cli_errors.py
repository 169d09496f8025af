"""Bad inputs through every command: a clear `error:` line, a non-zero exit, and nothing of the user's harmed.

Each case of the matrix runs `gsmlp` in-process inside one workspace of real files (tiny models, three
generated JPEGs, real ONNX exports, real pickles) and asserts:
- a non-zero exit status;
- an `error:` line naming the file, key or value at fault;
- no traceback, and never the last-resort "internal error" handler;
- every file of the workspace byte-identical afterwards, and no new file: no output, no temporary.
Then the guarantees that need more than one run: --force, re-runs, stop signals, the umask, NaN outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gsmlp.cli import main
from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.model.configs import tiny_config
from tests.conftest import FAMILIES
from tests.test_validate import gated_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = ["--data", "data/annotations.json", "--images", "data/images"]
UNREADABLE = ["--data", "unreadable/annotations.json", "--images", "unreadable/images"]
CALIBRATE = ["calibrate", "--model", "model", *DATA, "--block-size", "16", "--rank", "4"]
CALIBRATE += ["--gate-steps", "5", "--reservoir", "300"]
VALIDATE = ["validate", "--model", "gated", *DATA]
SMALL_IMAGES = {"size": {"shortest_edge": 96, "longest_edge": 128}}


class Payload:
    """A pickled object of a class that is not on the weights-only allow list."""


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _model_folder(folder: Path, family: str = "detr", seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    FAMILIES[family](tiny_config(family, **config)).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(SMALL_IMAGES))
    return folder


def _edited_copy(source: Path, target: Path, file: str, change) -> Path:
    shutil.copytree(source, target)
    data = json.loads((target / file).read_text())
    change(data)
    (target / file).write_text(json.dumps(data))
    return target


def _annotations(ws: Path, name: str, change) -> None:
    document = json.loads((ws / "data" / "annotations.json").read_text())
    change(document)
    (ws / "annotations").mkdir(exist_ok=True)
    (ws / "annotations" / f"{name}.json").write_text(json.dumps(document))


def _unreadable_split(ws: Path) -> None:
    """The three images, each unusable a different way: garbage bytes, truncated JPEG, wrong size."""
    shutil.copytree(ws / "data", ws / "unreadable")
    images = sorted((ws / "unreadable" / "images").iterdir())
    images[0].write_bytes(b"this is not a picture")
    images[1].write_bytes(images[1].read_bytes()[:400])
    document = json.loads((ws / "unreadable" / "annotations.json").read_text())
    document["images"][2]["width"] += 7  # the file no longer matches its annotations
    (ws / "unreadable" / "annotations.json").write_text(json.dumps(document))


def _pickles(ws: Path) -> None:
    (ws / "random.pth").write_bytes(random.Random(0).randbytes(4096))
    torch.save({"model": RunsCode()}, ws / "runs-code.pth")
    torch.save({"model": {"x": torch.zeros(1)}, "args": Payload()}, ws / "payload.pth")


def _broken_models(ws: Path) -> None:
    bad = ws / "bad-models"
    bad.mkdir()
    for name, change in {
        "negative-queries": {"num_queries": -1},
        "text-width": {"d_model": "wide"},
        "odd-heads": {"encoder_attention_heads": 3},
    }.items():
        _edited_copy(ws / "model", bad / name, "config.json", lambda c, change=change: c.update(change))
    _edited_copy(ws / "model", bad / "huge-images", "preprocessor_config.json",
                 lambda p: p["size"].update(longest_edge=10**6))  # fmt: skip
    shutil.copytree(ws / "model", bad / "truncated")
    weights = bad / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    shutil.copytree(ws / "model", bad / "empty-config")
    (bad / "empty-config" / "config.json").write_bytes(b"")
    shutil.copytree(ws / "model", ws / "nan-model")
    state = load_file(ws / "nan-model" / "model.safetensors")
    state["class_labels_classifier.bias"][:] = float("nan")
    save_file(state, ws / "nan-model" / "model.safetensors", metadata={"format": "pt"})


def _gated_edit(ws: Path, name: str, change) -> None:
    """A copy of the gated checkpoint with one gsmlp.json layer entry changed (issue 27: types, twins)."""
    _edited_copy(ws / "gated", ws / "bad-gated" / name, "gsmlp.json",
                 lambda meta: change(meta["layers"]["encoder.0"]))  # fmt: skip


def _broken_checkpoints(ws: Path) -> None:
    (ws / "bad-gated").mkdir()
    for name, change in {
        "threshold-text": lambda e: e.update(threshold="0.5"),
        "threshold-nan": lambda e: e.update(threshold=float("nan")),
        "hidden-float": lambda e: e.update(hidden=float(e["hidden"])),
        "rank-true": lambda e: e.update(rank=True),
        "block-huge": lambda e: e.update(block_size=10**9),
        "dense-hidden-other": lambda e: e.update(dense_hidden=e["dense_hidden"] * 2),
        "threshold-other": lambda e: e.update(threshold=e["threshold"] + 0.25),
    }.items():
        _gated_edit(ws, name, change)
    shutil.copytree(ws / "gated", ws / "bad-gated" / "weights-nan-threshold")
    weights = ws / "bad-gated" / "weights-nan-threshold" / "model.safetensors"
    state = load_file(weights)
    key = next(k for k in state if k.endswith("threshold"))
    state[key] = torch.tensor(float("nan"))
    save_file(state, weights, metadata={"format": "pt"})


def _hostile_inputs(ws: Path) -> None:
    """Names that reach outside what the user pointed at, and files that are not regular files."""
    for name, file_name in {"climbs-out": "../notes.txt", "absolute": "/etc/hostname"}.items():
        _annotations(ws, name, lambda d, f=file_name: d["images"][0].update(file_name=f))
    shutil.copytree(ws / "data", ws / "linked")
    (ws / "outside").mkdir()
    for image in sorted((ws / "linked" / "images").iterdir()):
        image.rename(ws / "outside" / image.name)  # every image a link out of --images
        image.symlink_to(ws / "outside" / image.name)
    os.mkfifo(ws / "fifo.json")
    os.mkfifo(ws / "fifo.onnx")
    (ws / "bad-models" / "huge-width").mkdir()
    for name, change in {"huge-width": {"d_model": 10**9, "encoder_attention_heads": 1,
                                        "decoder_attention_heads": 1},
                         "huge-model": {"d_model": 16384, "encoder_ffn_dim": 65536, "encoder_layers": 256},
                         "huge-queries": {"num_queries": 10**8}}.items():  # fmt: skip
        shutil.rmtree(ws / "bad-models" / name, ignore_errors=True)
        _edited_copy(ws / "model", ws / "bad-models" / name, "config.json", lambda c, x=change: c.update(x))
    _edited_copy(ws / "model", ws / "bad-models" / "edge-text", "preprocessor_config.json",
                 lambda p: p["size"].update(shortest_edge="96"))  # fmt: skip


def _edited_onnx(ws: Path) -> None:
    """gated.onnx declaring an absurd image size, and with a NaN threshold: refused before allocation."""
    import onnx

    proto = onnx.load(ws / "gated.onnx")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, 100000, 100000), strict=True):
        dim.dim_value = value
    onnx.save(proto, ws / "huge-input.onnx")
    proto = onnx.load(ws / "gated.onnx")
    node = next(n for n in proto.graph.node if n.op_type == "GatedSparseMLP")
    next(a for a in node.attribute if a.name == "threshold").f = float("nan")
    onnx.save(proto, ws / "nan-threshold.onnx")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace every case runs in: the inputs a user has, and files that belong to nobody but them."""
    ws = tmp_path_factory.mktemp("cli-errors")
    _model_folder(ws / "model")
    _model_folder(ws / "other", seed=1, num_labels=11)
    gated_checkpoint(ws, "detr")  # ws/gated
    write_split(SplitSpec("tiny", 3, seed=9), ws / "data", show_progress=False)
    _unreadable_split(ws)
    _broken_models(ws)
    _pickles(ws)
    for name, change in {
        "no-bbox": lambda d: d["annotations"][0].pop("bbox"),
        "nan-box": lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 3]),
        "three-numbers": lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
        "negative-width": lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]),
        "listed-category": lambda d: d["annotations"][0].update(category_id=[1]),
        "crowd-7": lambda d: d["annotations"][0].update(iscrowd=7),
        "repeated-image-id": lambda d: d["images"][1].update(id=d["images"][0]["id"]),
        "negative-height": lambda d: d["images"][0].update(height=-5),
        "numeric-file-name": lambda d: d["images"][0].update(file_name=17),
        "no-images": lambda d: d.update(images=[], annotations=[]),
        "no-area-no-iscrowd": lambda d: [(a.pop("area"), a.pop("iscrowd")) for a in d["annotations"]],
    }.items():
        _annotations(ws, name, change)
    (ws / "annotations" / "not-json.json").write_text('{"images": [')
    (ws / "docs").mkdir()
    (ws / "docs" / "thesis.txt").write_text("four years of work\n")
    (ws / "notes.txt").write_text("keep me\n")
    (ws / "summary.md").write_text("# my own summary\n")
    (ws / "corrupt.onnx").write_bytes(random.Random(1).randbytes(2048))
    (ws / "empty.onnx").write_bytes(b"")
    (ws / "corrupt.toml").write_text("[default.fp32\n")
    (ws / "nan.toml").write_text("[default.fp32]\nquantile_factor = nan\n")
    _broken_checkpoints(ws)
    _hostile_inputs(ws)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ws)
        for argv in (
            ["export", "--model", "gated", "--out", "gated.onnx", "--dynamic"],
            ["export", "--model", "other", "--out", "other.onnx", "--dynamic", "--dense"],
            ["export", "--model", "nan-model", "--out", "nan.onnx", "--dynamic", "--dense"],
        ):
            assert main(argv) == 0
    _edited_onnx(ws)
    return ws


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root (hidden ones too) with its content hash: what "untouched" means here."""

    def state(path: Path) -> str:
        if path.is_symlink():
            return f"link to {os.readlink(path)}"
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
        return "folder" if path.is_dir() else "special"  # a FIFO is never opened

    return {str(p.relative_to(root)): state(p) for p in sorted(root.rglob("*"))}


def run_gsmlp(argv: list[str], capsys) -> tuple[int, str, str]:
    """`gsmlp ARGV` in-process: (status, stdout, stderr). argparse's own errors exit 2 through SystemExit."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def in_ws(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ws)
    # A generated split would be made here on first use; no failing case may get that far.
    monkeypatch.setenv("GSMLP_CACHE", str(ws / "cache"))
    return ws


def assert_clean_failure(status: int, err: str, fragments: list[str]) -> None:
    assert status not in (0, None), f"exit status {status}: a failure reported as success\n{err}"
    errors = "\n".join(line for line in err.splitlines() if "error:" in line)
    assert errors, f"no `error:` line in:\n{err}"
    for fragment in fragments:
        assert fragment in errors, f"{fragment!r} not named in:\n{errors}"
    assert "Traceback" not in err and "internal error" not in err, err


# Shorthands of the command lines below.
ARGS = {
    "D": "--data data/annotations.json --images data/images",
    "U": "--data unreadable/annotations.json --images unreadable/images",
    "C": "calibrate --model model --data data/annotations.json --images data/images --block-size 16 "
    "--rank 4 --gate-steps 5 --reservoir 300",
    "V": "validate --model gated --data data/annotations.json --images data/images",
    "E": "eval --model model --data data/annotations.json --images data/images",
}
LONG = "r" * 250  # a legal name (255 bytes at most), too long once gsmlp's temporary suffix is added
# id -> (command line, run in the workspace; what the error line must name, separated by " | ").
CASES = {
    # Outputs that would destroy what gsmlp did not write (issue 17, "Data loss").
    "calibrate-out-foreign-folder": ("{C} --out docs", "--out docs | thesis.txt | --force"),
    "calibrate-out-dataset": ("{C} --out data", "--out data | --data data/annotations.json"),
    "calibrate-out-images": ("{C} --out data/images", "--images data/images"),
    "calibrate-out-model": ("{C} --out model", "--out model | --model model"),
    "calibrate-out-file": ("{C} --out notes.txt", "--out notes.txt | never replaces a file"),
    "calibrate-out-file-forced": ("{C} --out notes.txt --force", "never replaces a file"),
    "calibrate-out-model-forced": ("{C} --out model --force", "--model model"),
    "calibrate-out-eval-data": (
        "{C} --eval-data unreadable/annotations.json --eval-images unreadable/images --out unreadable",
        "--eval-data",
    ),
    "demo-out-foreign-folder": ("demo --out docs", "--out docs | thesis.txt | --force"),
    "demo-out-file": ("demo --out notes.txt --force", "--out notes.txt | never replaces a file"),
    "demo-out-model": ("demo --model model --out model", "--out model | --model model"),
    "eval-report-annotations": (
        "{E} --report data/annotations.json",
        "--report data/annotations.json | --data",
    ),
    "eval-report-in-model": ("{E} --report model/config.json", "model/config.json | --model model"),
    "eval-report-foreign-file": ("{E} --report notes.txt", "--report notes.txt | --force"),
    "validate-report-onnx": (
        "{V} --onnx gated.onnx --report gated.onnx",
        "--report gated.onnx | --onnx gated",
    ),
    "validate-report-annotations": ("{V} --onnx gated.onnx --report data/annotations.json", "--data data/"),
    "validate-markdown-foreign": ("{V} --onnx gated.onnx --report summary.json", "summary.md | --force"),
    "validate-report-is-its-markdown": ("{V} --onnx gated.onnx --report r.md", "r.md | overwrite each other"),
    "export-out-weights": (
        "export --model model --out model/model.safetensors",
        "model.safetensors | --model",
    ),
    "export-out-foreign-file": ("export --model gated --out notes.txt", "notes.txt | --force"),
    "build-out-onnx": ("build --onnx gated.onnx --out gated.onnx", "--onnx gated.onnx"),
    "build-cache-is-onnx": (
        "build --onnx gated.onnx --out g.engine --timing-cache gated.onnx",
        "--timing-cache gated.onnx",
    ),
    "build-out-foreign-file": ("build --onnx gated.onnx --out notes.txt", "notes.txt | --force"),
    "bench-report-foreign-file": ("bench ffn --report notes.txt", "--report notes.txt | --force"),
    "bench-report-in-model": (
        "bench ffn --report gated/gsmlp.json --masks-from gated --data data/images",
        "gated/gsmlp.json | --masks-from",
    ),
    # Folders where files are meant, files where folders are meant, paths that cannot be written.
    "eval-report-folder": ("{E} --report docs", "--report docs | folder"),
    "eval-report-trailing-slash": ("{E} --report new/", "new | folder"),
    "eval-report-under-file": ("{E} --report notes.txt/r.json", "notes.txt | not a folder"),
    "eval-report-unwritable": (
        "{E} --report /proc/gsmlp-report.json",
        "/proc/gsmlp-report.json | not writable",
    ),
    "calibrate-out-unwritable": ("{C} --out /proc/gsmlp-out", "/proc/gsmlp-out | not writable"),
    "validate-report-folder": ("{V} --onnx gated.onnx --report docs", "--report docs | folder"),
    "export-out-folder": ("export --model model --out docs", "--out docs | folder"),
    "build-out-folder": ("build --onnx gated.onnx --out docs", "--out docs | folder"),
    "build-cache-folder": (
        "build --onnx gated.onnx --out g.engine --timing-cache docs",
        "--timing-cache docs",
    ),
    "bench-report-folder": ("bench ffn --report docs", "--report docs | folder"),
    "bench-model-report-foreign-file": (
        "bench model --model gated --report notes.txt",
        "--report notes.txt | --force",
    ),
    "bench-model-report-in-model": (
        "bench model --model gated --report gated/gsmlp.json",
        "--report | --model",
    ),
    "validate-onnx-folder": ("{V} --onnx docs --report r.json", "--onnx docs | is a folder"),
    "validate-engine-folder": (
        "{V} --onnx gated.onnx --engine docs --report r.json",
        "--engine docs | folder",
    ),
    "validate-tolerances-folder": (
        "{V} --onnx gated.onnx --tolerances docs --report r.json",
        "--tolerances docs",
    ),
    "build-onnx-folder": ("build --onnx docs --out g.engine", "--onnx docs | is a folder"),
    "eval-images-file": (
        "eval --model model --data data/annotations.json --images data/images/000001.jpg",
        "data/images/000001.jpg | is a file",
    ),
    "eval-data-folder": ("eval --model model --data data --images data/images", "--data data | is a folder"),
    "bench-data-file": (
        "bench ffn --report b.json --masks-from gated --data notes.txt",
        "--data notes.txt | file",
    ),
    # Failures that used to be reported as success.
    "eval-no-readable-image": (
        "eval --model model {U}",
        "no image of | 000001.jpg | 000002.jpg | 000003.jpg",
    ),
    "calibrate-no-readable-image": ("calibrate --model model {U} --out c", "no image of | 000001.jpg"),
    "validate-no-readable-image": (
        "validate --model gated {U} --onnx gated.onnx --report r.json",
        "no image of | 000002.jpg",
    ),
    "bench-no-readable-image": (
        "bench ffn --report b.json --masks-from gated --data unreadable/images",
        "unreadable/images | none of the",
    ),
    "eval-nan-outputs": ("eval --model nan-model {D}", "nan-model | logits | NaN"),
    "calibrate-nan-outputs": ("calibrate --model nan-model {D} --out c", "logits | NaN"),
    # Annotations checked in full when they are read, before any image runs.
    "annotations-no-images": (
        "eval --model model --data annotations/no-images.json --images data/images",
        "no-images.json | lists no images",
    ),
    **{
        f"annotations-{name}": (
            f"eval --model model --data annotations/{name}.json --images data/images",
            f"{name}.json | {named}",
        )
        for name, named in {
            "no-bbox": "annotations[0] | bbox",
            "nan-box": "annotations[0] | nan",
            "three-numbers": "annotations[1] | [1, 2, 3]",
            "negative-width": "annotations[0] | -3",
            "listed-category": "category_id [1]",
            "crowd-7": "iscrowd 7",
            "repeated-image-id": "images[1] | repeats id",
            "negative-height": "images[0] | height -5",
            "numeric-file-name": "images[0] | file_name 17",
            "not-json": "corrupt",
        }.items()
    },
    # Model files: corrupt is called corrupt, unsafe is called unsafe and names the global.
    "pth-random-bytes": ("eval --model random.pth {D}", "random.pth | is corrupt"),
    "pth-runs-code": (
        "eval --model runs-code.pth {D}",
        f"runs-code.pth | unsafe | {os.system.__module__}.system",
    ),
    "pth-foreign-class": ("info --model payload.pth", f"payload.pth | unsafe | {__name__}.Payload"),
    "safetensors-truncated": ("info --model bad-models/truncated", "model.safetensors | corrupt"),
    "config-empty": ("export --model bad-models/empty-config --out x.onnx", "config.json | corrupt"),
    "config-negative-queries": (
        "eval --model bad-models/negative-queries {D}",
        "config.json | num_queries | -1",
    ),
    "config-text-width": ("info --model bad-models/text-width", "config.json | d_model | wide"),
    "config-odd-heads": ("eval --model bad-models/odd-heads {D}", "encoder_attention_heads 3"),
    "preprocessor-huge": (
        "eval --model bad-models/huge-images {D}",
        "preprocessor_config.json | longest_edge",
    ),
    "onnx-corrupt": ("{V} --onnx corrupt.onnx --report r.json", "corrupt.onnx | corrupt"),
    "onnx-empty": ("{V} --onnx empty.onnx --report r.json", "empty.onnx"),
    "onnx-other-model": ("{V} --onnx other.onnx --report r.json", "other.onnx | another model"),
    "build-onnx-corrupt": ("build --onnx corrupt.onnx --out g.engine", "corrupt.onnx"),
    "tolerances-corrupt": ("{V} --onnx gated.onnx --tolerances corrupt.toml --report r.json", "corrupt.toml"),
    "tolerances-nan": (
        "{V} --onnx gated.onnx --tolerances nan.toml --report r.json",
        "nan.toml | quantile_factor",
    ),
    "demo-tolerances-missing": ("demo --tolerances absent.toml --out d", "absent.toml"),
    # Numbers out of range, NaN and infinity, for every command.
    "eval-batch-0": ("{E} --batch-size 0", "--batch-size | 0"),
    "eval-threads-huge": ("{E} --threads 100000", "--threads | 100000"),
    "eval-limit-negative": ("{E} --limit -1", "--limit | -1"),
    "eval-block-0": ("{E} --block-size 0", "--block-size | 0"),
    "info-block-negative": ("info --model model --block-size -3", "--block-size | -3"),
    "calibrate-epsilon-nan": ("{C} --epsilon nan --out c", "--epsilon | nan"),
    "calibrate-sparsity-inf": ("{C} --target-sparsity inf --out c", "--target-sparsity | inf"),
    "calibrate-recall-high": ("{C} --target-recall 1.5 --out c", "--target-recall | 1.5"),
    "calibrate-rank-0": ("{C} --rank 0 --out c", "--rank | 0"),
    "calibrate-seed-negative": ("{C} --seed -1 --out c", "--seed | -1"),
    "calibrate-reservoir-0": ("{C} --reservoir 0 --out c", "--reservoir | 0"),
    "calibrate-max-images-0": ("{C} --max-images 0 --out c", "--max-images | 0"),
    "calibrate-sweep-2": ("{C} --sweep 0.5,2 --out c", "--sweep | 2"),
    "calibrate-not-a-number": ("{C} --rank four --out c", "--rank | four"),
    "export-height-0": ("export --model model --out x.onnx --height 0", "--height | 0"),
    "export-width-huge": ("export --model model --out x.onnx --width 100000", "--width | 100000"),
    "export-batch-0": ("export --model model --out x.onnx --batch 0", "--batch | 0"),
    "validate-limit-0": ("{V} --onnx gated.onnx --report r.json --limit 0", "--limit | 0"),
    "validate-batch-huge": ("{V} --onnx gated.onnx --report r.json --batch-size 9999", "--batch-size | 9999"),
    "bench-repeat-0": ("bench ffn --report b.json --repeat 0", "--repeat | 0"),
    "bench-model-limit-0": ("bench model --model gated --report b.json --limit 0", "--limit | 0"),
    "bench-sparsity-nan": ("bench ffn --report b.json --sparsity nan", "--sparsity | nan"),
    "bench-warmup-negative": ("bench ffn --report b.json --warmup -1", "--warmup | -1"),
    "demo-sparsity-nan": ("demo --out d --target-sparsity nan", "--target-sparsity | nan"),
    "demo-images-0": ("demo --out d --val-images 0", "--val-images | 0"),
    "build-workspace-0": ("build --onnx gated.onnx --out g.engine --workspace 0", "--workspace | 0"),
    "build-shapes-0": ("build --onnx gated.onnx --out g.engine --shapes 0x64x64", "--shapes | 0x64x64"),
    "detect-out-images": ("detect --onnx gated.onnx data/images --out data", "--out data | holds the input"),
    "detect-out-foreign-folder": ("detect --onnx gated.onnx data/images --out docs", "--out docs | --force"),
    "detect-onnx-corrupt": ("detect --onnx corrupt.onnx data/images --out d", "corrupt.onnx | cannot load"),
    "detect-no-readable-image": ("detect --onnx gated.onnx {U} --out d", "no image of | 000001.jpg"),
    "detect-score-nan": ("detect --onnx gated.onnx data/images --out d --score nan", "--score | nan"),
    # Issue 27. Read only what the user pointed at: names in a data file stay inside --images, links out
    # of it are not followed, special files are refused before anything opens them.
    "annotations-file-name-climbs-out": (
        "eval --model model --data annotations/climbs-out.json --images data/images",
        "climbs-out.json | images[0] | '../notes.txt' | '..'",
    ),
    "annotations-file-name-absolute": (
        "eval --model model --data annotations/absolute.json --images data/images",
        "absolute.json | '/etc/hostname' | absolute",
    ),
    "eval-images-link-out": (
        "eval --model model --data linked/annotations.json --images linked/images",
        "no image of | 000001.jpg",
    ),
    "eval-data-fifo": ("eval --model model --data fifo.json --images data/images", "fifo.json | FIFO"),
    "validate-onnx-fifo": ("{V} --onnx fifo.onnx --report r.json", "fifo.onnx | FIFO"),
    "validate-tolerances-device": (
        "{V} --onnx gated.onnx --tolerances /dev/zero --report r.json",
        "/dev/zero | character device",
    ),
    "eval-report-device": ("{E} --report /dev/null --force", "/dev/null | character device"),
    "eval-report-fifo": ("{E} --report fifo.json --force", "fifo.json | FIFO"),
    "validate-plugin-not-a-library": (
        "{V} --onnx gated.onnx --plugin-lib notes.txt --backends pytorch,tensorrt --report r.json",
        "--plugin-lib notes.txt | not a shared library",
    ),
    "demo-plugin-not-a-library": ("demo --plugin-lib notes.txt --out d", "--plugin-lib notes.txt | not a"),
    "build-plugin-not-a-library": (
        "build --onnx gated.onnx --out g.engine --plugin-lib notes.txt",
        "--plugin-lib notes.txt | not a shared library",
    ),
    # One source of truth in a checkpoint; values of the wrong type refused, not cast.
    "gated-threshold-text": ("info --model bad-gated/threshold-text", "gsmlp.json | encoder.0 | '0.5'"),
    "gated-threshold-nan": ("export --model bad-gated/threshold-nan --out x.onnx", "threshold nan"),
    "gated-hidden-float": ("info --model bad-gated/hidden-float", "gsmlp.json | hidden 256.0 | integer"),
    "gated-rank-true": ("info --model bad-gated/rank-true", "gsmlp.json | rank True"),
    "gated-block-huge": ("info --model bad-gated/block-huge", "block_size 1000000000"),
    "gated-dense-hidden-other": (
        "info --model bad-gated/dense-hidden-other",
        "gsmlp.json | dense_hidden 512 | config.json | 256",
    ),
    "gated-threshold-disagrees": (
        "export --model bad-gated/threshold-other --out x.onnx",
        "gsmlp.json | model.safetensors | disagree",
    ),
    "gated-weights-nan-threshold": (
        "export --model bad-gated/weights-nan-threshold --out x.onnx",
        "model.safetensors | nan | disagree",
    ),
    "preprocessor-edge-text": (
        "info --model bad-models/edge-text",
        "preprocessor_config.json | size.shortest_edge is '96'",
    ),
    "onnx-nan-threshold": (
        "{V} --onnx nan-threshold.onnx --report r.json",
        "nan-threshold.onnx | threshold nan",
    ),
    # Absurd sizes bounded before anything is allocated, naming the file, key and value.
    "config-huge-width": ("info --model bad-models/huge-width", "config.json | d_model is 1000000000"),
    "config-huge-model": ("info --model bad-models/huge-model", "config.json | d_model 16384 | parameters"),
    "config-huge-queries": (
        "eval --model bad-models/huge-queries {D}",
        "config.json | num_queries | 100000000",
    ),
    "onnx-huge-input": (
        "{V} --onnx huge-input.onnx --report r.json",
        "huge-input.onnx | pixel_values | height 100000",
    ),
    # Names that will fail are found before the work, naming the user's path.
    "eval-report-name-too-long": (f"{{E}} --report {LONG}.json", f"--report {LONG}.json | bytes long"),
    "calibrate-out-name-too-long": (f"{{C}} --out {LONG}", "bytes long | at most"),
}

if not torch.cuda.is_available():  # on a GPU machine tests/test_device.py runs these commands on it instead
    CASES.update(
        {
            "eval-device-cuda-without-gpu": (
                "{E} --device cuda --report r.json",
                "--device cuda | no CUDA GPU",
            ),
            "calibrate-device-cuda-without-gpu": (
                "{C} --device cuda --out new",
                "--device cuda | no CUDA GPU",
            ),
        }
    )


def command_line(case: str) -> list[str]:
    return shlex.split(CASES[case][0].format(**ARGS))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly_and_harms_nothing(in_ws: Path, case: str, capsys) -> None:
    before = snapshot(in_ws)
    status, _, err = run_gsmlp(command_line(case), capsys)
    assert_clean_failure(status, err, CASES[case][1].split(" | "))
    assert snapshot(in_ws) == before, "an input changed, or an output or temporary file was left behind"


def test_every_command_is_in_the_matrix() -> None:
    from gsmlp.commands import COMMANDS

    covered = {command_line(case)[0] for case in CASES}
    assert covered >= set(COMMANDS), f"commands without a bad-input case: {set(COMMANDS) - covered}"


def test_missing_optional_annotation_fields_get_defaults_and_a_warning(in_ws: Path, capsys) -> None:
    before = snapshot(in_ws)
    argv = [
        "eval",
        "--model",
        "model",
        "--data",
        "annotations/no-area-no-iscrowd.json",
        "--images",
        "data/images",
    ]
    status, out, err = run_gsmlp(argv, capsys)
    assert status == 0 and "AP50" in out
    assert "lack 'area'; using COCO's default, box width x height" in err
    assert "lack 'iscrowd'; using 0" in err
    assert snapshot(in_ws) == before


def test_unreadable_images_are_named_when_others_remain(in_ws: Path, capsys) -> None:
    """Two images of three unusable (garbage, truncated), one fine: the run scores the one and names two."""
    images = in_ws / "partly"
    shutil.copytree(in_ws / "data", images)
    try:
        files = sorted((images / "images").iterdir())
        files[0].write_bytes(b"")
        files[1].write_bytes(files[1].read_bytes()[:300])
        report = images / "eval.json"
        argv = ["eval", "--model", "model", "--data", "partly/annotations.json", "--images", "partly/images"]
        status, _, err = run_gsmlp([*argv, "--report", str(report)], capsys)
        assert status == 0 and "Traceback" not in err
        assert json.loads(report.read_text())["skipped_images"] == [files[0].name, files[1].name]
    finally:
        shutil.rmtree(images)


# --- outputs: --force, re-runs, atomic replacement -------------------------------------------------------


@pytest.fixture(scope="module")
def earlier_calibration(ws: Path) -> Path:
    """An earlier `gsmlp calibrate` output, to be replaced (or kept) by the runs below."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ws)
        assert main([*CALIBRATE, "--out", "earlier"]) == 0
    return ws / "earlier"


def test_force_replaces_a_foreign_folder_atomically(in_ws: Path, capsys) -> None:
    foreign = in_ws / "someone-elses"
    shutil.copytree(in_ws / "docs", foreign)
    try:
        status, _, err = run_gsmlp([*CALIBRATE, "--out", str(foreign)], capsys)
        assert status == 1 and "--force" in err
        assert (foreign / "thesis.txt").read_text() == "four years of work\n"
        status, _, _ = run_gsmlp([*CALIBRATE, "--out", str(foreign), "--force"], capsys)
        assert status == 0
        assert not (foreign / "thesis.txt").exists() and (foreign / "gsmlp.json").is_file()
        assert not [p for p in in_ws.iterdir() if p.name.startswith(".")], "a temporary was left behind"
    finally:
        shutil.rmtree(foreign)


def test_an_earlier_output_is_replaced_without_force(in_ws: Path, earlier_calibration: Path, capsys) -> None:
    again = in_ws / "again"
    shutil.copytree(earlier_calibration, again)
    try:
        (again / "gsmlp.json").write_text("{}")  # so that the replacement shows
        status, _, _ = run_gsmlp([*CALIBRATE, "--analyze-only", "--out", "again"], capsys)
        assert status == 0
        assert sorted(p.name for p in again.iterdir()) == sorted(
            ["analysis.json", "analysis.png", "statistics.json", "statistics.safetensors"]
        )  # replaced whole: no file of the earlier checkpoint is left mixed in
    finally:
        shutil.rmtree(again)


def test_earlier_reports_are_replaced_and_foreign_files_are_not(in_ws: Path, capsys) -> None:
    report = in_ws / "eval-report.json"
    argv = ["eval", "--model", "model", *DATA, "--limit", "1", "--report", str(report)]
    try:
        assert run_gsmlp(argv, capsys)[0] == 0
        first = report.read_bytes()
        assert run_gsmlp(argv, capsys)[0] == 0  # an earlier eval report: replaced
        assert json.loads(report.read_bytes())["images"] == 1 and report.read_bytes() != b""
        report.write_text(json.dumps({"mine": True}))
        status, _, err = run_gsmlp(argv, capsys)
        assert status == 1 and "not a report written by gsmlp eval" in err
        assert run_gsmlp([*argv, "--force"], capsys)[0] == 0
        assert set(json.loads(report.read_text())) >= set(json.loads(first))
    finally:
        report.unlink(missing_ok=True)


# --- stop signals --------------------------------------------------------------------------------------

STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM]


@pytest.mark.parametrize("signum", STOPS, ids=[s.name for s in STOPS])
def test_a_stop_signal_leaves_nothing_half_written(
    in_ws: Path, earlier_calibration: Path, signum: signal.Signals, monkeypatch, capsys
) -> None:
    """The signal arrives mid-run, after the temporary output folder exists: it is removed, and the earlier
    output at --out is kept byte for byte."""
    from gsmlp.calibration import workflow

    if signal.getsignal(signum) == signal.SIG_IGN:
        # gsmlp rightly keeps a signal its caller ignores ignored (nohup, a background job's SIGINT/SIGQUIT).
        pytest.skip(f"{signum.name} is ignored by the process that started pytest")

    def stopped_mid_run(*_args, **_kwargs):
        assert [p for p in in_ws.iterdir() if p.name.startswith(".earlier.")], "no temporary folder yet"
        # Never let a real SIGTERM reach pytest: the handler must be gsmlp's before the signal is sent.
        assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler)
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the run")

    monkeypatch.setattr(workflow, "calibrate_model", stopped_mid_run)
    before = snapshot(in_ws)
    status, _, err = run_gsmlp([*CALIBRATE, "--out", "earlier"], capsys)
    assert status == 128 + signum and f"stopped by {signum.name}" in err and "Traceback" not in err
    assert snapshot(in_ws) == before


def test_sigterm_stops_a_real_process_cleanly(in_ws: Path, earlier_calibration: Path) -> None:
    """The same, through the operating system: `kill` on a running `gsmlp calibrate`."""
    before = snapshot(in_ws)
    argv = [sys.executable, "-m", "gsmlp", *CALIBRATE, "--gate-steps", "100000", "--out", "earlier"]
    process = subprocess.Popen(argv, cwd=in_ws, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # the temporary folder appears once the run has started its work
            if any(p.name.startswith(".earlier.") for p in in_ws.iterdir()) or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert snapshot(in_ws) == before


# --- what gets written: modes, NaN reports, the last resort ---------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(in_ws: Path, umask: int, capsys) -> None:
    out = in_ws / f"umask-{umask:03o}"
    out.mkdir()
    previous = os.umask(umask)
    try:
        runs = [
            ["export", "--model", "gated", "--out", str(out / "g.onnx"), "--height", "64", "--width", "64"],
            ["eval", "--model", "model", *DATA, "--limit", "1", "--report", str(out / "eval.json")],
            [*CALIBRATE, "--max-images", "2", "--out", str(out / "checkpoint")],
            [*VALIDATE, "--onnx", "gated.onnx", "--limit", "1", "--report", str(out / "validate.json")],
        ]
        for argv in runs:
            assert run_gsmlp(argv, capsys)[0] == 0, argv
    finally:
        os.umask(previous)
    written = list(out.rglob("*"))
    assert len(written) > 10
    for path in written:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, f"{path}: {oct(path.stat().st_mode & 0o777)}"
    shutil.rmtree(out)


def test_nan_outputs_fail_the_backend_and_the_report_is_written(in_ws: Path, capsys) -> None:
    report = in_ws / "nan-report.json"
    argv = ["validate", "--model", "model", *DATA, "--onnx", "nan.onnx", "--report", str(report)]
    try:
        status, _, err = run_gsmlp(argv, capsys)
        assert_clean_failure(status, err, ["onnxruntime failed", "logits", "NaN", str(report)])
        written = json.loads(report.read_text())
        onnxruntime = written["backends"]["onnxruntime"]
        assert onnxruntime["status"] == "failed" and "non-finite outputs" in onnxruntime["reason"]
        assert written["backends"]["pytorch"]["status"] == "ok" and written["pass"] is False
    finally:
        for path in in_ws.glob("nan-report*"):
            path.unlink()


def test_outputs_shaped_like_another_model_fail_that_backend(ws: Path) -> None:
    """Past the up-front check (a dynamic file names no class count): the harness compares shapes."""
    from gsmlp.model.loaders import load_detector
    from gsmlp.validation.backends import OnnxRuntimeBackend, PyTorchBackend
    from gsmlp.validation.harness import InputBatch, validate_backends
    from gsmlp.validation.tolerances import tolerance_for

    model = load_detector(str(ws / "model")).model
    batch = InputBatch(torch.zeros(1, 3, 64, 64).numpy(), torch.ones(1, 64, 64, dtype=torch.int64).numpy())
    backends = {"pytorch": PyTorchBackend(model), "onnxruntime": OnnxRuntimeBackend(ws / "other.onnx")}
    report = validate_backends(
        backends, [batch], family="detr", tolerance=tolerance_for("fp32"), progress=False
    )
    entry = report["backends"]["onnxruntime"]
    assert entry["status"] == "failed" and "output logits" in entry["reason"] and report["pass"] is False


def test_the_last_resort_handler_hides_the_traceback_unless_asked(monkeypatch, capsys) -> None:
    from gsmlp.commands import info

    def broken(_args):
        raise ValueError("a bug")

    monkeypatch.setattr(info, "run", broken)
    status, _, err = run_gsmlp(["info", "--model", "detr-small"], capsys)
    assert status == 70 and "internal error, a bug in gsmlp (ValueError: a bug)" in err
    assert "Traceback" not in err
    monkeypatch.setenv("GSMLP_DEBUG", "1")
    status, _, err = run_gsmlp(["info", "--model", "detr-small"], capsys)
    assert status == 70 and "Traceback" in err


def test_a_closed_output_pipe_is_no_traceback(ws: Path) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # whatever gsmlp prints now meets a closed pipe, as `gsmlp ... | head -0` does
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gsmlp", "info", "--model", str(ws / "model")],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert result.returncode == 1 and "output pipe was closed" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_write_that_hits_a_size_limit_is_named_and_leaves_nothing(in_ws: Path) -> None:
    """A full disk, as the operating system reports it: the write fails (EFBIG under RLIMIT_FSIZE)."""
    import resource

    def small_files_only() -> None:
        signal.signal(
            signal.SIGXFSZ, signal.SIG_IGN
        )  # the write then fails instead of the signal stopping it
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    before = snapshot(in_ws)
    argv = ["eval", "--model", "model", "--limit", "1", *DATA, "--report", "big.json"]
    result = subprocess.run(
        [sys.executable, "-m", "gsmlp", *argv],
        cwd=in_ws, preexec_fn=small_files_only, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_clean_failure(result.returncode, result.stderr, ["big.json was not written", "File too large"])
    assert snapshot(in_ws) == before
