"""`gsmlp bench ffn`: its measurement, the recording of real FFN inputs, and its argument errors."""

from __future__ import annotations

import pytest
import torch

from gsmlp import kernels
from gsmlp.cli import main
from gsmlp.model.gated_mlp import MicroGate
from gsmlp.model.wrap import gated_layers, set_mode, wrap_ffns
from gsmlp.runtime.ort_session import op_library
from gsmlp.validation import ffn_bench as bench
from gsmlp.validation import ffn_inputs as recorded
from tests.conftest import make_tiny_model

needs_library = pytest.mark.skipif(not kernels.available(), reason="no kernel library")


@needs_library
def test_measure_reports_the_case_it_timed() -> None:
    layer = bench.random_gated_layer(64, 256, 32, rank=8)
    x = torch.randn(300, 64)
    threshold = bench.threshold_for_sparsity(layer, x, 0.75)
    case = bench.measure("tiny", layer, x, threshold, threads=1, repeat=2, warmup=1, target=0.75)
    record = case.as_dict()
    for key in ("tokens", "d_model", "hidden", "block_size", "sparsity", "dtype", "device", "threads"):
        assert key in record
    assert (case.tokens, case.d_model, case.hidden, case.block_size) == (300, 64, 256, 32)
    assert case.sparsity == pytest.approx(0.75, abs=0.02)
    assert case.dense_ms > 0 and case.sparse_ms > 0 and case.pack_ms > 0
    assert case.speedup == pytest.approx(case.dense_ms / case.sparse_ms, rel=1e-2)


@pytest.mark.skipif(op_library() is None, reason="the gsmlp ONNX Runtime op library is not built")
def test_onnxruntime_measure_times_the_library_against_the_same_dense_ffn() -> None:
    from gsmlp.runtime.ort_session import open_session
    from gsmlp.validation import ffn_bench_onnxruntime as ort_bench

    layer = bench.random_gated_layer(64, 256, 32, rank=8)
    x = torch.randn(300, 64)
    threshold = bench.threshold_for_sparsity(layer, x, 0.75)
    case = ort_bench.measure("tiny", layer, x.numpy(), threshold, dtype="fp32", threads=1, repeat=2, warmup=1)
    assert case.backend == "onnxruntime" and case.tokens == 300 and case.threads == 1
    assert case.sparsity == pytest.approx(0.75, abs=0.02)
    assert case.dense_ms > 0 and case.sparse_ms > 0
    # The baseline is the same FFN: with every block active the op equals the dense subgraph.
    feeds = {"X": x.numpy()}
    dense = open_session(ort_bench.dense_graph(layer, "fp32").SerializeToString(), op="function").session
    every_block = ort_bench.op_graph(layer, float("-inf"), "fp32").SerializeToString()
    sparse = open_session(every_block, op="library", use_cuda=False).session
    torch.testing.assert_close(
        torch.from_numpy(sparse.run(None, feeds)[0]),
        torch.from_numpy(dense.run(None, feeds)[0]),
        atol=1e-4,
        rtol=1e-4,
    )


def _gated_tiny_model(family: str):
    model = wrap_ffns(make_tiny_model(family), block_size=16)
    for _, layer in gated_layers(model):
        layer.attach_gate(MicroGate(layer.d_model, layer.num_blocks, 4), threshold=0.0)
    set_mode(model, "gated")
    return model


@needs_library
def test_recorded_inputs_drive_the_benchmark(family: str) -> None:
    model = _gated_tiny_model(family)
    pixels = torch.randn(1, 3, 96, 128)
    layers = recorded.record_ffn_inputs(model, lambda: model(pixel_values=pixels))
    assert [r.name for r in layers] == [n for n, _ in model.named_modules() if n.endswith(".mlp")]
    first = layers[0]
    assert first.inputs.shape[-1] == first.layer.d_model and first.inputs.shape[0] > 0
    case = bench.measure(first.name, first.layer, first.inputs, float(first.layer.threshold),
                         threads=1, repeat=1, warmup=0)  # fmt: skip
    with torch.no_grad():
        expected = (~(first.layer.gate(first.inputs) <= first.layer.threshold)).double().mean().item()
    assert case.sparsity == pytest.approx(1.0 - expected, abs=1e-4)  # rounded to 4 places


def test_recording_needs_a_gated_model() -> None:
    model = wrap_ffns(make_tiny_model("detr"))
    with pytest.raises(Exception, match="no GatedSparseMLP with a micro-gate"):
        recorded.record_ffn_inputs(model, lambda: None)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sparsity", "0.5,1.2"], "must lie in"),
        (["--sparsity", "half"], "comma-separated numbers"),
        (["--repeat", "0"], "--repeat must be at least 1, got 0"),
        (["--shapes", "yolo"], "unknown 'yolo'"),
        (["--masks-from", "x"], "go together"),
        (["--threads", "0"], "--threads must be between 1 and 1024, got 0"),
        (["--backend", "onnxruntime", "--device", "cuda"], "--backend onnxruntime times the synthetic cases"),
    ],
)
def test_bench_arguments_are_explained(argv, message, tmp_path, capsys) -> None:
    assert main(["bench", "ffn", "--report", str(tmp_path / "r.json"), *argv]) == 1
    assert message in capsys.readouterr().err
