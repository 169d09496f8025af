"""Shared fixtures: tiny models of both families and the real COCO images beside the repository."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import DeformableDetrForObjectDetection, DetrForObjectDetection

from gsmlp.data.shapes import SplitSpec, write_split
from gsmlp.model.configs import tiny_config
from gsmlp.model.zoo import ZOO_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"detr": DetrForObjectDetection, "deformable-detr": DeformableDetrForObjectDetection}


def coco_subset_dir() -> Path:
    """The 150 real COCO val2017 images: $GSMLP_COCO_SUBSET, else ../shared/data/coco_val2017_subset."""
    default = REPO_ROOT.parent / "shared" / "data" / "coco_val2017_subset"
    return Path(os.environ.get("GSMLP_COCO_SUBSET", default))


@pytest.fixture(scope="session")
def coco_subset() -> Path:
    root = coco_subset_dir()
    if not (root / "annotations" / "instances_val2017.json").is_file():
        pytest.skip(f"the real COCO subset is not at {root} (set GSMLP_COCO_SUBSET to its folder)")
    return root


def make_tiny_model(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return FAMILIES[family](tiny_config(family)).eval()


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> str:
    return request.param


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests (full-size models, minutes on a CPU) run only with GSMLP_SLOW=1."""
    if os.environ.get("GSMLP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set GSMLP_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def save_hf_dir(model: torch.nn.Module, folder: Path) -> Path:
    """A Hugging Face folder (config.json + model.safetensors) of an unwrapped transformers model."""
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """On the shared 2-core machine a tiny forward pass took 1.9 s with 2 threads and 0.025 s with 1
    (threads wait on each other while other jobs hold the cores); the results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tensorrt_headers() -> Path:
    """$GSMLP_TENSORRT_INCLUDE, a folder holding NvInfer.h (TensorRT's include/ or the folder above it).

    Absent headers are the one reason a TensorRT build test skips: where they are given, anything else that
    keeps the plugin or the sample from building is a failure, never a skip.
    """
    value = os.environ.get("GSMLP_TENSORRT_INCLUDE")
    if not value:
        pytest.skip("GSMLP_TENSORRT_INCLUDE is not set (point it at a folder holding the TensorRT headers)")
    path = Path(value)
    if not (path / "NvInfer.h").is_file() and not (path / "include" / "NvInfer.h").is_file():
        pytest.skip(f"GSMLP_TENSORRT_INCLUDE={path} holds no NvInfer.h")
    assert shutil.which("cmake"), "the TensorRT headers are given, so cmake must be on PATH to build"
    return path


@pytest.fixture(scope="session")
def gated_detr_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(gated checkpoint, its ONNX export): `detr-small` with MGS gates calibrated briefly (4 shapes-train
    images, 10 gate steps), exported as `gsmlp demo` does (a static square of the longest edge, 320)."""
    from gsmlp.calibration.options import CalibrationJob, CalibrationOptions
    from gsmlp.calibration.workflow import calibrate
    from gsmlp.exporter.export import ExportOptions, export_onnx
    from gsmlp.model.loaders import load_detector

    folder = tmp_path_factory.mktemp("gated-detr-small")
    checkpoint, onnx_path = folder / "checkpoint", folder / "gated.onnx"
    method = CalibrationOptions(method="mgs", gate_steps=10)
    calibrate(CalibrationJob(model="detr-small", data="shapes-train", out=checkpoint, limit=4, reservoir=1000,
                             method=method))  # fmt: skip
    loaded = load_detector(str(checkpoint))
    edge = loaded.preprocess.longest_edge
    export_onnx(loaded.model, onnx_path, ExportOptions(height=edge, width=edge, preprocess=loaded.preprocess))
    return checkpoint, onnx_path


@pytest.fixture(scope="session")
def shapes_val_40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 images of shapes-val (same spec and seed, fewer images)."""
    folder = tmp_path_factory.mktemp("shared") / "shapes-val-40"
    write_split(SplitSpec("shapes-val", 40, seed=2), folder, show_progress=False)
    return folder


@pytest.fixture(scope="session")
def small_detr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped detr-small at 160 pixels instead of 320: a trained model (AP well above 0, so equal
    metrics mean something) at a quarter of the cost."""
    folder = tmp_path_factory.mktemp("shared") / "detr-small-160"
    shutil.copytree(ZOO_DIR / "detr-small", folder)
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    preprocessor["size"] = {"shortest_edge": 160, "longest_edge": 160}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder
