"""Every example gsmlp prints works as printed (issue 27, class 7).

The examples are found, not listed: every `examples:` / `example:` / `Typical flow:` section of every
`--help` (each command and subcommand, as argparse prints it) and every command block of README.md (a fenced
bash/sh block, or an unlabelled one whose lines are commands). Each runs in a sandbox folder in which the
inputs it names exist as tiny real files: the generated splits (shapes-train, shapes-val) hold a few images,
a model path named like a calibrated checkpoint (`*-mgs`) is `gsmlp calibrate`'s default output (few gate
steps), an ONNX path is `gsmlp export` of the example's model, a COCO JSON and its image folder hold generated
images, and `../shared/data/coco_val2017_subset` is the real subset where it exists. Examples that need
TensorRT or a GPU skip naming what is missing; the few that take minutes are marked slow, with the reason.
A new command or example is picked up by itself; an input of a kind this file cannot make fails the test,
naming the option to add to `make_input`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gsmlp.cli import build_parser, main
from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.model import zoo
from tests.conftest import REPO_ROOT, coco_subset_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECTION = re.compile(r"^(\s*)(examples?|typical flow)\s*:\s*$", re.IGNORECASE)
COMMAND_STARTS = ("gsmlp ", "./scripts/", "python ")
TRAILING_COMMENT = re.compile(r"\s{2,}\([^()]*\)\s*$")  # "gsmlp demo --out runs/demo   (all of the above)"
# Placeholders the README's step-by-step block uses for "your own" inputs, and what stands in for them.
PLACEHOLDERS = {"MODEL": "detr-small"}
SPLIT_SIZES = {"shapes-train": 3, "shapes-val": 3, "shapes-test": 2}  # bench model warms up on 2


@dataclass(frozen=True)
class Example:
    source: str  # "gsmlp eval --help" or "README.md"
    line: str  # the command as printed (continuations joined)

    @property
    def words(self) -> list[str]:
        words = shlex.split(self.line, comments=True)
        return [PLACEHOLDERS.get(w, w) for w in words]

    @property
    def program(self) -> str:
        """`gsmlp`, `./scripts/demo.sh`, ...: what runs, after any VAR=value in front of it."""
        found = re.search(r"(?:^|\s)(gsmlp|\./scripts/\S+|python\S*)(?=\s|$)", self.line)
        return found.group(1) if found else self.line.split()[0]


def _help_texts() -> dict[str, str]:
    """`gsmlp --help`, `gsmlp COMMAND --help`, `gsmlp bench ffn --help`, ... as argparse prints them."""
    texts: dict[str, str] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        texts[name] = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(build_parser(), "gsmlp")
    return texts


def _commands(lines: list[str]) -> list[str]:
    """Commands in a run of text lines: continuations joined, comments in parentheses dropped."""
    commands, current = [], ""
    for raw in lines:
        line = raw.strip()
        if not current and (not line or line.startswith("(") or not line.startswith(COMMAND_STARTS)):
            if line and not line.startswith("(") and "=" in line.split()[0]:  # VAR=value ./scripts/...
                current = line
            else:
                continue
        else:
            current = f"{current} {line}".strip() if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        command = TRAILING_COMMENT.sub("", re.sub(r"\s+#.*$", "", current))  # "(...)" and shell comments
        commands.append(" ".join(command.split()))
        current = ""
    return commands


def help_examples() -> list[Example]:
    found: dict[str, Example] = {}
    for name, text in _help_texts().items():
        lines = text.splitlines()
        for index, line in enumerate(lines):
            header = SECTION.match(line)
            if not header:
                continue
            indent, body = len(header.group(1)), []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            for command in _commands(body):
                found.setdefault(command, Example(f"{name} --help", command))
    return list(found.values())


def readme_examples() -> list[Example]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    examples = []
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        lines = block.splitlines()
        commands = _commands(lines)
        labelled = language in ("bash", "sh", "shell", "console")
        if commands and (
            labelled or len(commands) == len([s for s in lines if not s.rstrip().endswith("\\")])
        ):
            examples += [Example("README.md", command) for command in commands]
    return examples


EXAMPLES = help_examples() + readme_examples()


def _why_not_here(words: list[str]) -> str | None:
    """What a command needs that this machine may lack (TensorRT, a GPU), or None."""
    from gsmlp.runtime.trt_common import tensorrt_missing

    needs_trt = words[:2] == ["gsmlp", "build"] or "--engine" in words
    needs_trt |= any("tensorrt" in w for w in _values(words, "--backends"))
    if needs_trt and (missing := tensorrt_missing()):
        return f"needs TensorRT: {missing}"
    if "cuda" in _values(words, "--device"):
        import torch

        if not torch.cuda.is_available():
            return "needs a CUDA GPU (--device cuda)"
    return None


# Examples that take minutes on a 2-core CPU, with why: run with GSMLP_SLOW=1.
SLOW = [
    (lambda w: w[:3] == ["gsmlp", "bench", "ffn"] and "--masks-from" not in w,
     "times the full-size DETR-R50 and Deformable-DETR-R50 FFN shapes at five sparsities (minutes)"),
    (lambda w: w[:3] == ["gsmlp", "bench", "model"] and "--height" in w,
     "times four variants of a model at 800x800 on 12 real COCO images"),
    (lambda w: any(word.endswith("scripts/demo.sh") for word in w),
     "installs gsmlp first (a C++ build of minutes); the `gsmlp demo` examples run the same demo"),
    (lambda w: w[:2] == ["gsmlp", "demo"] and "deformable-detr-small" in w,
     "the whole demo a second time, on the Deformable DETR"),
]  # fmt: skip
NEVER = {"./scripts/test.sh": "runs this test suite itself (CI runs it, through .ci/run)"}


def _values(words: list[str], option: str) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == option]


def _example_id(example: Example) -> str:
    where = "README" if example.source == "README.md" else example.source.replace(" --help", "")
    return re.sub(r"[^\w.,=/-]+", "_", f"{where}: {example.line}")[:90]


def _params() -> list:
    params = []
    for example in EXAMPLES:
        words = example.words
        program = example.program
        marks = [pytest.mark.skip(reason=NEVER[program])] if program in NEVER else []
        marks += [pytest.mark.slow] if any(test(words) for test, _ in SLOW) else []
        params.append(pytest.param(example, marks=marks, id=_example_id(example)))
    return params


# --- the sandbox ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sandbox/work is the working folder; ../shared beside it, as in this project's checkouts."""
    root = tmp_path_factory.mktemp("examples")
    (root / "work").mkdir()
    for name, count in SPLIT_SIZES.items():
        write_split(SplitSpec(name, count, seed=len(name)), root / "cache" / name, show_progress=False)
    coco = coco_subset_dir()
    target = root / "shared" / "data" / "coco_val2017_subset"
    target.parent.mkdir(parents=True)
    if (coco / "annotations" / "instances_val2017.json").is_file():
        target.symlink_to(coco)
    else:
        _tiny_coco(target / "annotations" / "instances_val2017.json", target / "val2017")
    return root / "work"


def _tiny_coco(annotations: Path, images: Path) -> None:
    work = annotations.parent / ".tiny-coco"
    write_split(SplitSpec("tiny", 2, seed=7), work, show_progress=False)
    annotations.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(work / "annotations.json", annotations)
    images.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(work / "images", images)
    shutil.rmtree(work)


def _gsmlp(argv: list[str]) -> None:
    status = main(argv)
    assert status == 0, f"making the input: gsmlp {' '.join(argv)} exited {status}"


def make_input(option: str, value: str, words: list[str]) -> None:
    """Create the input `value` of `option` that an example reads (relative to the working folder)."""
    path = Path(value)
    if option in ("--model", "--masks-from"):
        base = "deformable-detr-small" if "deformable" in value else "detr-small"
        if re.search(r"mgs|gated", path.name):  # a calibrated checkpoint: calibrate's defaults
            _gsmlp(["calibrate", "--model", base, "--data", "shapes-train", "--gate-steps", "20",
                    "--reservoir", "2000", "--out", value])  # fmt: skip
        else:
            shutil.copytree(zoo.builtin_dir(base), path)
    elif option in ("--onnx", "--onnx-dense", "--onnx-gated"):
        model = (_values(words, "--model") or ["runs/detr-small-mgs"])[0]
        ensure(["--model", model], "--model", model)
        dense = ["--dense"] if "dense" in path.name or option == "--onnx-dense" else []
        _gsmlp(["export", "--model", model, "--out", value, *dense])
    elif option in ("--data", "--eval-data") and value.endswith(".json"):
        images = _values(words, option.replace("data", "images"))
        assert images, f"{option} {value} without its --images"
        _tiny_coco(path, Path(images[0]))
    elif option == "--data":  # a folder of images (bench ffn --masks-from)
        work = path.parent / f".{path.name}-split"
        write_split(SplitSpec("tiny", 2, seed=8), work, show_progress=False)
        shutil.move(work / "images", path)
        shutil.rmtree(work)
    else:
        raise AssertionError(f"an example reads {option} {value}, which tests/test_examples.py cannot make")


INPUTS = ("--model", "--masks-from", "--onnx", "--onnx-dense", "--onnx-gated", "--data", "--eval-data",
          "--images", "--eval-images", "--tolerances", "--plugin-lib", "--engine")  # fmt: skip


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def make_images(words: list[str]) -> None:
    """The images an example names as plain words (`gsmlp detect ... photo.jpg holiday/`): a real COCO
    JPEG for a file, and a folder of two images for a word that ends in `/`."""
    for before, word in zip(words, words[1:], strict=False):
        if word.startswith("-") or before.startswith("-") or os.path.exists(word):
            continue  # an option, or an option's value: ensure() makes those
        if word.endswith("/"):
            _coco_images(2, Path(word))
        elif word.lower().endswith(IMAGE_SUFFIXES):
            folder = Path(f".{Path(word).name}-image")
            _coco_images(1, folder)
            Path(word).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(next(folder.iterdir()), word)
            shutil.rmtree(folder)


def _coco_images(count: int, folder: Path) -> None:
    """`count` images of the COCO subset (generated ones where the subset is absent) into `folder`."""
    real = sorted((coco_subset_dir() / "val2017").glob("*.jpg"))[:count]
    if len(real) < count:
        work = folder.parent / f".{folder.name}-split"
        write_split(SplitSpec("tiny", count, seed=9), work, show_progress=False)
        real = sorted((work / "images").iterdir())[:count]
    folder.mkdir(parents=True, exist_ok=True)
    for image in real:
        shutil.copyfile(image, folder / image.name)
    shutil.rmtree(folder.parent / f".{folder.name}-split", ignore_errors=True)


def ensure(words: list[str], option: str, value: str) -> None:
    from gsmlp.data.shapes import SPLITS

    if os.path.exists(value) or zoo.is_builtin(value) or value in SPLITS:
        return
    if option in ("--images", "--eval-images"):
        return  # made with its --data
    make_input(option, value, words)


# --- the test ------------------------------------------------------------------------------------------


def test_examples_are_found() -> None:
    """The discovery itself can fail: every command's help shows at least one example."""
    from gsmlp.commands import COMMANDS

    sources = {e.source for e in EXAMPLES}
    for command in COMMANDS:
        assert any(s.startswith(f"gsmlp {command}") for s in sources), f"gsmlp {command} --help: no example"
    assert any(e.source == "README.md" for e in EXAMPLES)


@pytest.mark.parametrize("example", _params())
def test_every_printed_example_works(example: Example, sandbox: Path, monkeypatch, capsys) -> None:
    words = example.words
    why = _why_not_here(words)
    if why:
        pytest.skip(f"{example.line}: {why}")
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("GSMLP_CACHE", str(sandbox.parent / "cache"))
    for option in INPUTS:
        for value in _values(words, option):
            ensure(words, option, value)
    if words[0] == "gsmlp":
        make_images(words)
    capsys.readouterr()
    if words[0] == "gsmlp":
        status = main(words[1:])
        err = capsys.readouterr().err
    else:  # a script, as the README prints it: from the checkout, through the shell
        result = subprocess.run(["bash", "-c", example.line], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=1800)  # fmt: skip
        status, err = result.returncode, result.stderr
    assert status == 0, f"`{example.line}` (from {example.source}) exited {status}:\n{err[-3000:]}"
    assert "Traceback" not in err
