"""--device: eval's and calibrate's forward passes on a GPU, calibration's per-layer fitting on the CPU, and
each torchrun rank's GPU runtimes on GPU LOCAL_RANK.

The placement helpers run everywhere. The GPU runs are real `gsmlp` processes and skip, naming what is
missing, without a CUDA GPU (two of them for the NCCL run); without one, the `--device cuda` refusal is a case
of tests/test_cli_errors.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsmlp.distributed import Group, pin_runtimes_to_local_gpu
from gsmlp.errors import GsmlpError
from gsmlp.gpu_choice import CUDA_DEVICE_ENV
from gsmlp.model.placement import require_device, to_device
from tests.test_distributed import _data, _ok, run_gsmlp

NO_GPU = "needs a CUDA GPU: torch.cuda.is_available() is False here"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
needs_two_gpus = pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason=f"needs 2 CUDA GPUs for NCCL; {torch.cuda.device_count()} here"
)


def test_a_stand_in_moves_as_its_one_element() -> None:
    stand_in = torch.zeros(()).expand(2, 3, 64, 64)  # the sweep cache's pixels: no memory held
    moved = to_device({"pixels": stand_in, "mask": torch.ones(2, 3)}, torch.device("meta"))
    assert moved["pixels"].device.type == "meta" and moved["pixels"].shape == stand_in.shape
    assert moved["pixels"].stride() == (0, 0, 0, 0)
    assert moved["mask"].device.type == "meta" and moved["mask"].stride() == (3, 1)


def test_inputs_already_on_the_device_are_the_same_tensors() -> None:
    pixels = torch.ones(1, 3, 8, 8)
    assert to_device({"pixels": pixels}, torch.device("cpu"))["pixels"] is pixels


def test_each_rank_computes_on_its_local_gpu() -> None:
    assert Group().torch_device("cpu") == torch.device("cpu")
    assert Group().torch_device("cuda") == torch.device("cuda")
    rank = Group(rank=5, world_size=8, local_rank=1, backend="nccl")
    assert rank.torch_device("cuda") == torch.device("cuda", 1)
    assert rank.torch_device("cpu") == torch.device("cpu")


def test_each_rank_pins_its_runtimes_to_its_gpu_unless_the_user_chose() -> None:
    environ: dict[str, str] = {}
    pin_runtimes_to_local_gpu(3, environ)
    assert environ == {CUDA_DEVICE_ENV: "3"}
    chosen = {CUDA_DEVICE_ENV: "1"}
    pin_runtimes_to_local_gpu(3, chosen)
    assert chosen == {CUDA_DEVICE_ENV: "1"}


def test_onnxruntime_puts_its_cuda_provider_on_the_pinned_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from gsmlp.runtime.ort_session import _providers

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
    monkeypatch.setenv(CUDA_DEVICE_ENV, "2")
    assert _providers(ort, True) == [("CUDAExecutionProvider", {"device_id": "2"}), "CPUExecutionProvider"]
    assert _providers(ort, False) == ["CPUExecutionProvider"]
    monkeypatch.setenv(CUDA_DEVICE_ENV, "gpu1")
    with pytest.raises(GsmlpError, match="CUDA_DEVICE='gpu1'"):
        _providers(ort, True)


def test_an_unknown_or_absent_device_is_refused() -> None:
    with pytest.raises(GsmlpError, match="--device 'tpu'"):
        require_device("tpu")
    require_device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(GsmlpError, match="--device cuda: torch sees no CUDA GPU"):
            require_device("cuda")


def _eval(model: Path, split: Path, report: Path, *extra: str, nproc: int | None = None) -> dict:
    args = ["eval", "--model", str(model), *_data(split), "--limit", "16", "--report", str(report), *extra]
    _ok(run_gsmlp(args, nproc))
    return json.loads(report.read_text())


def _assert_same_metrics(report: dict, reference: dict) -> None:
    # fp32 on another device, or summed in another order, rounds differently; a changed detection would
    # move a metric of 16 images by far more than 0.1 points.
    for name, value in reference["metrics"].items():
        assert report["metrics"][name] == pytest.approx(value, abs=0.1), name


@pytest.mark.gpu
@needs_gpu
def test_eval_on_the_gpu_gives_the_metrics_of_the_cpu(
    small_detr: Path, shapes_val_40: Path, tmp_path: Path
) -> None:
    cpu = _eval(small_detr, shapes_val_40, tmp_path / "cpu.json")
    gpu = _eval(small_detr, shapes_val_40, tmp_path / "gpu.json", "--device", "cuda")
    assert gpu["device"] == "cuda" and gpu["images"] == cpu["images"] == 16
    _assert_same_metrics(gpu, cpu)


@pytest.mark.gpu
@needs_two_gpus
def test_eval_with_two_nccl_ranks_gives_the_metrics_of_one_gpu(
    small_detr: Path, shapes_val_40: Path, tmp_path: Path
) -> None:
    one = _eval(small_detr, shapes_val_40, tmp_path / "one.json", "--device", "cuda")
    two = _eval(small_detr, shapes_val_40, tmp_path / "two.json", "--device", "cuda", nproc=2)
    assert two["distributed"] == {"world_size": 2, "backend": "nccl", "images_per_rank": [8, 8],
                                  "images_per_second": two["distributed"]["images_per_second"]}  # fmt: skip
    _assert_same_metrics(two, one)


@pytest.mark.gpu
@needs_gpu
def test_calibrate_on_the_gpu_writes_a_checkpoint_the_cpu_loads(
    small_detr: Path, shapes_val_40: Path, tmp_path: Path
) -> None:
    from gsmlp.model.loaders import load_detector

    args = ["calibrate", "--model", str(small_detr), *_data(shapes_val_40), "--limit", "12"]
    args += ["--method", "sibs+mgs", "--gate-steps", "50", "--reservoir", "2000", "--sweep", ""]
    args += ["--eval-data", _data(shapes_val_40)[1], "--eval-images", _data(shapes_val_40)[3]]
    args += ["--eval-limit", "8"]
    reports = {}
    for device in ("cpu", "cuda"):
        _ok(run_gsmlp([*args, "--device", device, "--out", str(tmp_path / device)], None))
        reports[device] = json.loads((tmp_path / device / "calibration.json").read_text())
    assert reports["cuda"]["device"] == "cuda"
    # The statistics come from GPU forward passes: a neuron at exactly zero may round the other way.
    for part in ("encoder", "decoder"):
        assert reports["cuda"]["ffn_sparsity"][part] == pytest.approx(
            reports["cpu"]["ffn_sparsity"][part], abs=0.02
        )
    loaded = load_detector(str(tmp_path / "cuda"))
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
