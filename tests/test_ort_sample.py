"""gsmlp_ort_sample, the C++ ONNX Runtime runner, built here and run on real COCO images.

Built with -Werror against the C API headers ($GSMLP_ONNXRUNTIME_INCLUDE), linked to the onnxruntime wheel's
library; it runs the gated `detr-small` export and a gated random full-size DETR-R50 export (slow) with the
gsmlp op library on the input `prepare_image` writes, and its detections are those of `gsmlp detect` on the
same images: the same labels, scores and boxes within 1e-5. Bad input (a file that is not ONNX, one without
gsmlp metadata, a missing op library, a wrong input size) gets a message and a non-zero exit. The TensorRT
sample's metadata reading is run through gsmlp_engine_metadata, which needs no TensorRT.

Skips, with the reason, only where the ONNX Runtime headers are not given; given, a failed build fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from gsmlp.cli import main
from gsmlp.runtime.engine_metadata import FORMAT
from gsmlp.runtime.ort_session import op_library
from tests.conftest import REPO_ROOT
from tests.test_detect import foreign_onnx, read_results, xyxy

# Both runtimes run the same file in the same libonnxruntime and decode in float32 by the same rule; what
# may differ is the order of the softmax sum. 1e-5 is the bound, in score and in box pixels.
ATOL = 1e-5
# Real COCO val2017 images of both orientations (640x480 and 427x640).
COCO_IMAGES = ("000000005001.jpg", "000000006818.jpg")
DETECTION_LINE = re.compile(
    r"query +(\d+) +label +(\d+) +score (\S+) +box \[(\S+), (\S+), (\S+), (\S+)\] +(.*)$"
)


@dataclass
class Samples:
    ort: Path
    engine_metadata: Path


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """runtime/cpp configured and built in a temporary folder; the ONNX Runtime sample must be among them."""
    include = os.environ.get("GSMLP_ONNXRUNTIME_INCLUDE")
    if not include or not (Path(include) / "onnxruntime_c_api.h").is_file():
        pytest.skip(
            f"GSMLP_ONNXRUNTIME_INCLUDE={include or '(unset)'} holds no onnxruntime_c_api.h (point it at the "
            "include/ folder of an ONNX Runtime release, C API >= 29)"
        )
    assert shutil.which("cmake"), "the ONNX Runtime headers are given, so cmake must be on PATH to build"
    build = tmp_path_factory.mktemp("samples")
    configure = [
        "cmake", "-S", str(REPO_ROOT / "runtime" / "cpp"), "-B", str(build),
        f"-DGSMLP_ONNXRUNTIME_INCLUDE={include}", f"-DPython3_EXECUTABLE={sys.executable}",
    ]  # fmt: skip
    done = subprocess.run(configure, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gsmlp_ort_sample: C API version" in done.stdout, done.stdout
    targets = ["--target", "gsmlp_ort_sample", "gsmlp_engine_metadata"]
    done = subprocess.run(["cmake", "--build", str(build), *targets],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-8000:]
    return Samples(build / "gsmlp_ort_sample", build / "gsmlp_engine_metadata")


def coco_image(coco_subset: Path, name: str) -> Path:
    return coco_subset / "val2017" / name


def run_sample(samples: Samples, onnx_path: Path, image: Path, folder: Path, score: float) -> list[dict]:
    """prepare_image, then the command line it prints, run: the sample's detections as records."""
    raw = folder / f"{image.stem}.raw"
    printed = subprocess.run(
        [sys.executable, "-m", "gsmlp.runtime.prepare_image", str(image), str(raw), "--model", onnx_path],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "--ops-lib" in printed, printed  # the op library is built here
    run_line = next(line for line in printed.splitlines() if line.startswith("run: "))
    arguments = shlex.split(run_line.removeprefix("run: "))
    assert arguments[0] == "gsmlp_ort_sample"
    done = subprocess.run([str(samples.ort), *arguments[1:], "--score", str(score)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GatedSparseMLP ran on: gsmlp op library (CPU)" in done.stdout, done.stdout
    records = []
    for line in done.stdout.splitlines():
        match = DETECTION_LINE.match(line)
        if match:
            _, label, score_text, *box, _ = match.groups()
            records.append(
                {"category_id": int(label), "score": float(score_text), "box": [float(v) for v in box]}
            )
    header = next(line for line in done.stdout.splitlines() if " detections with score >= " in line)
    assert int(header.split()[0]) == len(records), done.stdout
    return records


def assert_same_detections(samples: Samples, onnx_path: Path, images: list[Path], tmp_path: Path,
                           score: float) -> int:  # fmt: skip
    """gsmlp detect and gsmlp_ort_sample on the same file and images; returns how many detections agreed."""
    out = tmp_path / "detect"
    assert (
        main(
            ["detect", "--onnx", str(onnx_path), *map(str, images), "--score", str(score), "--out", str(out)]
        )
        == 0
    )
    python = read_results(out)
    compared = 0
    for image in images:
        ours = [r for r in python if r["file_name"] == str(image)]
        theirs = run_sample(samples, onnx_path, image, tmp_path, score)
        assert ours, f"no detection at score >= {score} on {image}: nothing would be compared"
        assert sorted(r["category_id"] for r in theirs) == sorted(r["category_id"] for r in ours), image
        worst = max(_pair_up(theirs, ours))
        assert worst <= ATOL, f"{image}: a detection differs by {worst:.3g} in score or box"
        compared += len(ours)
    return compared


def _pair_up(theirs: list[dict], ours: list[dict]) -> list[float]:
    """Each C++ detection's difference from its counterpart of the same label in `ours` (max over score and
    box corners). Paired by nearness, not by rank: queries whose scores differ by less than the runtimes'
    rounding (a random model's are nearly equal) may rank in either order."""
    left = list(ours)
    differences = []
    for record in theirs:
        same_label = [r for r in left if r["category_id"] == record["category_id"]]
        distance = [max(abs(r["score"] - record["score"]), float(np.abs(xyxy(r) - record["box"]).max()))
                    for r in same_label]  # fmt: skip
        best = int(np.argmin(distance))
        differences.append(distance[best])
        left.remove(same_label[best])
    return differences


@pytest.fixture(scope="session")
def op_library_built() -> Path:
    library = op_library()
    assert library is not None, "the ONNX Runtime headers are given, so gsmlp must have built its op library"
    return library


def test_sample_equals_detect_on_gated_detr_small(samples, gated_detr_small, coco_subset, op_library_built,
                                                  tmp_path: Path) -> None:  # fmt: skip
    _, onnx_path = gated_detr_small
    images = [coco_image(coco_subset, name) for name in COCO_IMAGES]
    # detr-small was trained on shapes, not COCO: its scores on photographs are low, so every one of the 25
    # queries is compared (score 0), not only confident ones.
    assert assert_same_detections(samples, onnx_path, images, tmp_path, score=0.0) == 2 * 25


@pytest.fixture(scope="module")
def gated_random_r50(coco_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random full-size DETR-R50 (scripts/random_r50.py), MGS-gated on 2 real images, exported --dynamic."""
    from gsmlp.calibration.options import CalibrationJob, CalibrationOptions
    from gsmlp.calibration.workflow import calibrate
    from gsmlp.exporter.export import ExportOptions, export_onnx
    from gsmlp.model.loaders import load_detector

    folder = tmp_path_factory.mktemp("detr-r50")
    script = REPO_ROOT / "scripts" / "random_r50.py"
    command = [sys.executable, str(script), "--family", "detr", "--out", str(folder / "random")]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    annotations = str(coco_subset / "annotations" / "instances_val2017.json")
    method = CalibrationOptions(method="mgs", gate_steps=10)
    images = str(coco_subset / "val2017")
    calibrate(CalibrationJob(model=str(folder / "random"), data=annotations, images=images,
                             out=folder / "gated", limit=2, reservoir=2000, method=method))  # fmt: skip
    loaded = load_detector(str(folder / "gated"))
    onnx_path = folder / "gated.onnx"
    export_onnx(loaded.model, onnx_path, ExportOptions(dynamic=True, preprocess=loaded.preprocess))
    return onnx_path


@pytest.mark.slow
def test_sample_equals_detect_on_gated_random_r50(samples, gated_random_r50, coco_subset, op_library_built,
                                                  tmp_path: Path) -> None:  # fmt: skip
    """One 640x480 COCO image, at DETR's 800x1066: random weights score about 1/92, so all 100 count."""
    image = coco_image(coco_subset, COCO_IMAGES[0])
    assert assert_same_detections(samples, gated_random_r50, [image], tmp_path, score=0.0) == 100


# ---- bad input ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(gated_detr_small, coco_subset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, onnx_path = gated_detr_small
    ws = tmp_path_factory.mktemp("ort-sample-bad")
    shutil.copy(onnx_path, ws / "gated.onnx")
    (ws / "random.onnx").write_bytes(random.Random(5).randbytes(4096))
    onnx.save(foreign_onnx(), str(ws / "foreign.onnx"))
    older = onnx.load(str(onnx_path))
    kept = [p for p in older.metadata_props if p.key in ("gsmlp.family", "gsmlp.mode", "gsmlp.dtype")]
    del older.metadata_props[:]
    older.metadata_props.extend(kept)  # what gsmlp export wrote before the runtime metadata
    onnx.save(older, str(ws / "older.onnx"))
    image = coco_image(coco_subset, COCO_IMAGES[0])
    command = ["-m", "gsmlp.runtime.prepare_image", str(image), str(ws / "in.raw"), "--model", "gated.onnx"]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, timeout=120, cwd=ws)
    (ws / "short.raw").write_bytes((ws / "in.raw").read_bytes()[:1000])
    return ws


GOOD = (
    "--input in.raw --height 320 --width 320 --valid-height 240 --valid-width 320 "
    "--image-height 480 --image-width 640"
)
SAMPLE_CASES = {
    "not-onnx": ("--onnx random.onnx {LIB} " + GOOD, 1, "ONNX Runtime cannot load random.onnx | not an ONNX"),
    "missing-onnx": ("--onnx absent.onnx {LIB} " + GOOD, 1, "--onnx absent.onnx | no such file"),
    "no-gsmlp-metadata": (
        "--onnx foreign.onnx --input in.raw --height 32 --width 32",
        1,
        "foreign.onnx | no gsmlp metadata",
    ),
    "older-metadata": ("--onnx older.onnx {LIB} " + GOOD, 1, "older.onnx | older gsmlp | gsmlp.activation"),
    "missing-op-library": (
        "--onnx gated.onnx --ops-lib absent.so " + GOOD,
        1,
        "--ops-lib absent.so | no such file",
    ),
    "op-library-not-a-library": (
        "--onnx gated.onnx --ops-lib in.raw " + GOOD,
        1,
        "could not load the op library",
    ),
    "wrong-input-size": (
        "--onnx gated.onnx {LIB} " + GOOD.replace("--width 320", "--width 640"),
        1,
        "pixel_values [1,3,320,320] | --height 320 --width 640 | prepare_image",
    ),
    "raw-file-too-short": (
        "--onnx gated.onnx {LIB} " + GOOD.replace("in.raw", "short.raw"),
        1,
        "short.raw | 1000",
    ),
    "missing-raw-file": ("--onnx gated.onnx {LIB} " + GOOD.replace("in.raw", "absent.raw"), 1, "absent.raw"),
    "no-input-flag": ("--onnx gated.onnx {LIB} --height 320 --width 320", 2, "--input | usage:"),
    "score-out-of-range": (
        "--onnx gated.onnx {LIB} " + GOOD + " --score 2",
        2,
        "bad value for --score: 2 | [0, 1]",
    ),
    "bad-height": (
        "--onnx gated.onnx {LIB} " + GOOD.replace("--height 320", "--height 0"),
        2,
        "--height: 0 | whole number",
    ),
    "unknown-flag": ("--onnx gated.onnx {LIB} " + GOOD + " --plugin x.so", 2, "--plugin | usage:"),
}


@pytest.mark.parametrize("case", sorted(SAMPLE_CASES))
def test_sample_bad_input(samples, bad_inputs: Path, op_library_built: Path, case: str) -> None:
    command, status, named = SAMPLE_CASES[case]
    argv = shlex.split(command.replace("{LIB}", f"--ops-lib {op_library_built}"))
    done = subprocess.run(
        [str(samples.ort), *argv], capture_output=True, text=True, cwd=bad_inputs, timeout=120
    )
    assert done.returncode == status, done.stdout + done.stderr
    for part in named.split(" | "):
        assert part in done.stderr, (part, done.stderr)
    assert "detections with score" not in done.stdout
    assert "Traceback" not in done.stderr and "terminate called" not in done.stderr


def test_sample_help(samples) -> None:
    done = subprocess.run([str(samples.ort), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for part in ("usage: gsmlp_ort_sample --onnx FILE", "--ops-lib", "prepare_image", "--threads", "--score"):
        assert part in done.stdout, (part, done.stdout)


# ---- the TensorRT sample's metadata reading, without TensorRT ---------------------------------------------


def _engine_json(folder: Path, name: str, document: dict) -> Path:
    path = folder / f"{name}.engine.json"
    path.write_text(json.dumps(document))
    return path


def test_engine_metadata_is_read_as_the_onnx_metadata(samples, gated_detr_small, tmp_path: Path) -> None:
    """An engine JSON as `gsmlp build` writes it (the export's metadata_props under "metadata")."""
    _, onnx_path = gated_detr_small
    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    path = _engine_json(tmp_path, "gated", {"format": FORMAT, "tensorrt_version": "11.1", "metadata": props})
    done = subprocess.run(
        [str(samples.engine_metadata), str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == ["family detr", "mode gated", "dtype fp32", f"gsmlp {props['gsmlp.version']}",
                         "activation softmax"]  # fmt: skip
    labels = json.loads(props["gsmlp.labels"])
    assert lines[5:] == [f"label {i} {name or i}" for i, name in enumerate(labels)]
    assert "label 1 circle" in lines


ENGINE_JSON_CASES = {
    "older-build": (
        {"format": FORMAT, "tensorrt_version": "11.1"},
        "older `gsmlp build` | rebuild the engine",
    ),
    "not-gsmlp": ({"format": "something-else"}, "not a gsmlp engine metadata file"),
    "no-metadata-keys": ({"format": FORMAT, "metadata": {"producer": "x"}}, "no gsmlp metadata"),
    "newer-metadata": (
        {"format": FORMAT, "metadata": {"gsmlp.family": "detr", "gsmlp.metadata_version": "9"}},
        "metadata version 9 | newer",
    ),
}


@pytest.mark.parametrize("case", sorted(ENGINE_JSON_CASES))
def test_engine_metadata_refuses_what_it_cannot_read(samples, tmp_path: Path, case: str) -> None:
    document, named = ENGINE_JSON_CASES[case]
    path = _engine_json(tmp_path, case, document)
    done = subprocess.run(
        [str(samples.engine_metadata), str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    for part in [str(path), *named.split(" | ")]:
        assert part in done.stderr, (part, done.stderr)


def test_engine_metadata_of_a_missing_or_corrupt_json(samples, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.engine.json"
    corrupt.write_text("{not json")
    for path, named in ((tmp_path / "absent.engine.json", "cannot read"), (corrupt, "is corrupt")):
        done = subprocess.run(
            [str(samples.engine_metadata), str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and named in done.stderr and str(path) in done.stderr, done.stderr
