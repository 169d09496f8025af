"""`gsmlp bench msda`: the op alone against its ONNX body and transformers' module, its inputs placed as the
model places them, its report and its argument errors. The figures themselves are docs/PERFORMANCE.md's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsmlp import kernels
from gsmlp.cli import main
from gsmlp.runtime.ort_session import op_library
from gsmlp.validation import msda_bench
from tests.test_sampling_function import BOUND, transformers_reference

needs_both = pytest.mark.skipif(
    not kernels.available() or op_library() is None,
    reason="the kernel library or the ONNX Runtime op library is not built",
)


def test_model_like_inputs_sit_around_each_querys_reference_point() -> None:
    levels = [(10, 12), (5, 6)]
    inputs = msda_bench.model_like_inputs(levels, None)
    queries = 10 * 12 + 5 * 6
    assert inputs.sampling_locations.shape == (1, queries, 8, 2, 4, 2)
    assert inputs.value.shape == (1, queries, 8, 32)
    torch.testing.assert_close(inputs.attention_weights.sum((-1, -2)), torch.ones(1, queries, 8))
    # The encoder's query 13 is pixel (x 1, y 1) of level 0: its samples lie a few pixels from its centre.
    offsets = inputs.sampling_locations[0, 13, :, 0] * torch.tensor([12.0, 10.0]) - torch.tensor([1.5, 1.5])
    assert offsets.abs().mean() < 3 * msda_bench.OFFSET_PIXELS
    assert msda_bench.model_like_inputs(levels, 7).sampling_locations.shape[1] == 7


@needs_both
@pytest.mark.parametrize("backend", msda_bench.BACKENDS)
def test_measure_times_the_op_against_its_reference(backend: str) -> None:
    inputs = msda_bench.model_like_inputs([(10, 12), (5, 6)], 40)
    measure = msda_bench.measure_onnxruntime if backend == "onnxruntime" else msda_bench.measure_pytorch
    case = measure("tiny", inputs, dtype="fp32", threads=1, repeat=2, warmup=1)
    assert case.backend == backend and case.queries == 40 and case.value_len == 150 and case.threads == 1
    assert case.reference_ms > 0 and case.op_ms > 0
    assert case.speedup == pytest.approx(case.reference_ms / case.op_ms, rel=1e-2)
    assert case.max_abs_diff <= BOUND
    expected = transformers_reference(*inputs.tensors())
    assert (kernels.multi_scale_deformable_attention(*inputs.tensors()) - expected).abs().max() <= BOUND


@needs_both
def test_command_writes_one_case_per_shape_and_backend(tmp_path: Path, capsys) -> None:
    report = tmp_path / "msda.json"
    code = main(["bench", "msda", "--shapes", "decoder", "--repeat", "1", "--warmup", "0", "--threads", "1",
                 "--report", str(report)])  # fmt: skip
    assert code == 0
    cases = json.loads(report.read_text())["msda_cases"]
    assert [(c["shape"], c["backend"]) for c in cases] == [("decoder", "onnxruntime"), ("decoder", "pytorch")]
    assert all(c["queries"] == 300 and c["value_len"] == 13294 and c["max_abs_diff"] <= BOUND for c in cases)
    assert "function body (GridSample per level)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shapes", "neck"], "--shapes 'neck': choose from encoder, decoder"),
        (["--backends", "tensorrt"], "--backends 'tensorrt': choose from onnxruntime, pytorch"),
        (["--repeat", "0"], "--repeat"),
        (["--dtype", "fp16"], "transformers' MultiScaleDeformableAttention cannot run in fp16 on the CPU"),
    ],
)
def test_bad_arguments_are_named(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    code = main(["bench", "msda", *args, "--report", str(tmp_path / "r.json")])
    assert code != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
