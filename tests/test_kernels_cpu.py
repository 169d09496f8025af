"""The CPU kernel against the PyTorch reference (GatedSparseMLP in gated mode), per docs/op_spec.md.

The default run samples the cross product of tokens x d_model x hidden x block size x sparsity x dtype;
GSMLP_SLOW=1 runs all of it (test_exhaustive_sweep).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import sys
import warnings

import pytest
import torch

from gsmlp import kernels
from gsmlp.errors import GsmlpError
from gsmlp.kernels import _calls
from gsmlp.kernels import _library as L
from gsmlp.model import kernel_hook
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.model.kernel_hook import run_layer
from gsmlp.model.wrap import gated_layers, set_mode, wrap_ffns
from gsmlp.validation.ffn_bench import random_gated_layer
from tests.conftest import REPO_ROOT, make_tiny_model

pytestmark = pytest.mark.skipif(not kernels.available(), reason=f"no kernel library: {L.why_not_loaded()}")

# fp32: the op spec's tolerance. fp16: the kernel accumulates in fp32 and rounds y once; the reference runs
# in fp32 on the same fp16 values, so the difference is y's own fp16 rounding (2^-11 relative) plus slack.
TOLERANCE = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float16: dict(atol=2e-3, rtol=2e-3)}


def make_layer(d_model: int, hidden: int, block_size: int, rank: int = 16, seed: int = 0) -> GatedSparseMLP:
    return random_gated_layer(d_model, hidden, block_size, rank, seed)


def threshold_for(logits: torch.Tensor, sparsity: float) -> float:
    """A threshold that makes `sparsity` of the block logits inactive, placed in the widest gap near that
    quantile, so that a different fp32 summation order cannot flip a block across it."""
    if sparsity <= 0.0:
        return float("-inf")
    if sparsity >= 1.0:
        return float("inf")
    values = logits.flatten().double().sort().values
    k = min(max(int(sparsity * values.numel()), 1), values.numel() - 1)
    window = max(1, min(64, values.numel() // 100))  # moves the sparsity by at most 1 %
    lo, hi = max(k - window, 1), min(k + window, values.numel() - 1)
    gaps = values[lo : hi + 1] - values[lo - 1 : hi]
    best = lo + int(gaps.argmax())
    return float((values[best - 1] + values[best]) / 2)


def set_sparsity(layer: GatedSparseMLP, x: torch.Tensor, sparsity: float) -> None:
    with torch.no_grad():
        layer.threshold.fill_(threshold_for(layer.gate(x.float()), sparsity))


def reference(layer: GatedSparseMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """model/gated_mlp.py's gated mode in fp32 (on the fp16 values where x is fp16) and the active counts."""
    ref = layer.float() if x.dtype != torch.float32 else layer
    kernel, ref.kernel = ref.kernel, None
    with torch.no_grad():
        y = ref(x.float())
        active = (~(ref.gate(x.float()) <= ref.threshold)).sum(-1).to(torch.int32)
    ref.kernel = kernel
    return y, active


def near_threshold(layer: GatedSparseMLP, x: torch.Tensor) -> torch.Tensor:
    """[tokens] bool: some block logit lies within fp32 rounding of the threshold."""
    with torch.no_grad():
        logits = layer.float().gate(x.float()) if x.dtype != torch.float32 else layer.gate(x)
    threshold = float(layer.threshold)
    if not torch.isfinite(torch.tensor(threshold)):
        return torch.zeros(logits.shape[:-1], dtype=torch.bool, device=logits.device)
    return ((logits - threshold).abs() <= 2e-6 * (1.0 + abs(threshold))).any(-1)


def check_case(tokens, d_model, hidden, block_size, sparsity, dtype, device="cpu", seed=0) -> None:
    layer = make_layer(d_model, hidden, block_size, seed=seed).to(device)
    x = torch.randn(tokens, d_model, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    if tokens:
        set_sparsity(layer, x, sparsity)
    layer_t, x_t = layer.to(dtype), x.to(dtype)
    y, active = run_layer(layer_t, x_t)
    expected, expected_active = reference(layer_t, x_t)
    layer.to(torch.float32)
    assert y.shape == x.shape and y.dtype == dtype
    # A logit within fp32 rounding of the threshold may fall either side in another summation order; such
    # tokens (rare: the threshold sits in a wide gap) are left out of the comparison, and counted.
    clear = ~near_threshold(layer_t, x_t)
    assert int((~clear).sum()) <= max(1, tokens // 20)
    torch.testing.assert_close(active[clear], expected_active[clear])
    torch.testing.assert_close(y.float()[clear], expected[clear], **TOLERANCE[dtype])
    if tokens and 0.0 < sparsity < 1.0:  # the sparsity actually reached is the one asked for
        reached = 1.0 - active.double().mean().item() / layer.num_blocks
        resolution = 2.0 / (tokens * layer.num_blocks)  # one token has only num_blocks levels
        assert reached == pytest.approx(sparsity, abs=max(0.05, resolution))


SAMPLED_CASES = [
    # tokens, d_model, hidden, block_size, sparsity, dtype
    (0, 64, 256, 32, 0.5, torch.float32),
    (1, 64, 256, 1, 0.5, torch.float32),
    (1, 256, 2048, 64, 1.0, torch.float32),
    (7, 96, 320, 8, 0.9, torch.float32),
    (7, 128, 300, 32, 0.5, torch.float32),  # partial last block
    (7, 64, 256, 8, 0.0, torch.float16),
    (850, 256, 2048, 32, 0.9, torch.float32),
    (850, 256, 1024, 64, 0.0, torch.float32),
    (850, 64, 256, 8, 1.0, torch.float32),
    (850, 128, 512, 1, 0.5, torch.float32),
    (850, 256, 1024, 32, 0.9, torch.float16),
    (20000, 256, 1024, 32, 0.9, torch.float32),
    (20000, 64, 256, 64, 0.5, torch.float16),
]


@pytest.mark.parametrize("tokens,d_model,hidden,block_size,sparsity,dtype", SAMPLED_CASES)
def test_kernel_matches_reference(tokens, d_model, hidden, block_size, sparsity, dtype) -> None:
    check_case(tokens, d_model, hidden, block_size, sparsity, dtype)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GSMLP_SLOW") != "1", reason="exhaustive sweep: set GSMLP_SLOW=1")
def test_exhaustive_sweep() -> None:
    grid = itertools.product(
        [0, 1, 7, 850, 20000], [64, 256], [256, 2048], [1, 8, 32, 64], [0.0, 0.5, 0.9, 1.0], TOLERANCE
    )
    for case in grid:
        check_case(*case)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_count_does_not_change_the_result(threads: int) -> None:
    layer = make_layer(64, 512, 32)
    x = torch.randn(601, 64)
    set_sparsity(layer, x, 0.5)
    y1, _ = run_layer(layer, x, threads=1)
    y, _ = run_layer(layer, x, threads=threads)
    assert torch.equal(y, y1)  # each token is computed by one thread in a fixed order


def test_non_contiguous_inputs() -> None:
    layer = make_layer(64, 256, 32)
    wide = torch.randn(50, 3, 100)
    x = wide[:, 1, 10:74]  # row stride 300, unit column stride: read in place
    set_sparsity(layer, x, 0.5)
    torch.testing.assert_close(run_layer(layer, x)[0], reference(layer, x)[0], **TOLERANCE[torch.float32])
    xt = torch.randn(64, 40).t()  # column stride != 1: copied by the op
    torch.testing.assert_close(run_layer(layer, xt)[0], reference(layer, xt)[0], **TOLERANCE[torch.float32])
    column = torch.randn(64, 3)[:, 1].reshape(1, 64)  # one token, column stride 3: copied by the op
    torch.testing.assert_close(run_layer(layer, column)[0], reference(layer, column)[0], atol=1e-4, rtol=1e-4)
    row = torch.randn(1, 64).expand(5, 64)  # row stride 0: copied by the op
    torch.testing.assert_close(run_layer(layer, row)[0], reference(layer, row)[0], **TOLERANCE[torch.float32])
    x3 = torch.randn(4, 9, 64)
    y3, active3 = run_layer(layer, x3)
    assert y3.shape == (4, 9, 64) and active3.shape == (4, 9)


def test_nan_token_is_nan_and_all_active_others_unaffected() -> None:
    layer = make_layer(64, 256, 32)
    x = torch.randn(9, 64)
    set_sparsity(layer, x, 0.9)
    x[4, 7] = float("nan")
    y, active = run_layer(layer, x)
    assert torch.isnan(y[4]).all()
    assert active[4] == layer.num_blocks  # NaN logits keep every block active
    clean = [0, 1, 2, 3, 5, 6, 7, 8]
    torch.testing.assert_close(y[clean], reference(layer, x[clean])[0], **TOLERANCE[torch.float32])


def test_inf_follows_the_arithmetic_like_the_reference() -> None:
    layer = make_layer(64, 256, 32)
    x = torch.randn(6, 64)
    set_sparsity(layer, x, 0.5)
    x[1, 3], x[3, 0], x[3, 1] = float("inf"), float("inf"), float("-inf")
    y, _ = run_layer(layer, x)
    torch.testing.assert_close(y, reference(layer, x)[0], equal_nan=True, atol=1e-4, rtol=1e-4)


def test_nan_in_an_inactive_block_contributes_nothing() -> None:
    layer = make_layer(64, 256, 32)
    with torch.no_grad():
        layer.gate.up.bias[2] = -1e9  # block 2 is never active
        layer.fc1.weight[2 * 32 + 5, :] = float("nan")
        layer.threshold.fill_(-1e6)  # every other block active
    x = torch.randn(20, 64)
    y, active = run_layer(layer, x)
    assert torch.isfinite(y).all() and (active == layer.num_blocks - 1).all()
    torch.testing.assert_close(y, reference(layer, x)[0], **TOLERANCE[torch.float32])


def test_all_blocks_inactive_gives_b2() -> None:
    layer = make_layer(64, 256, 32)
    layer.threshold.fill_(float("inf"))
    y, active = run_layer(layer, torch.randn(5, 64))
    assert torch.equal(y, layer.fc2.bias.expand(5, -1)) and (active == 0).all()


def test_no_gate_is_the_dense_ffn() -> None:
    layer = make_layer(64, 256, 32)
    x = torch.randn(33, 64)
    y, active = torch.ops.gsmlp.gated_sparse_mlp(
        x, layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias, None, None, None, 32, 0.0, 0
    )
    dense = layer.fc2(torch.relu(layer.fc1(x)))
    torch.testing.assert_close(y, dense, **TOLERANCE[torch.float32])
    assert (active == layer.num_blocks).all()


def test_weights_changed_in_place_are_repacked() -> None:
    layer = make_layer(64, 256, 32)
    x = torch.randn(10, 64)
    run_layer(layer, x)
    with torch.no_grad():
        layer.fc1.weight.mul_(2.0)  # bumps the tensor version: the packed copy must not be reused
    torch.testing.assert_close(run_layer(layer, x)[0], reference(layer, x)[0], **TOLERANCE[torch.float32])


# --- the C ABI's statuses ---------------------------------------------------------------------------


def _abi_call(*, block_size=32, stride=None, workspace_delta=0, null_w1=False, function="gsmlp_cpu_forward"):
    lib = L.load()
    layer = make_layer(64, 256, 32)
    x = torch.randn(8, 64)
    y = torch.empty_like(x)
    problem = L.Problem(8, 64, 256, block_size, 16, 0.0, L.FP32)
    g = layer.gate
    tensors = L.Tensors(
        x.data_ptr(), 64 if stride is None else stride, None if null_w1 else layer.fc1.weight.data_ptr(),
        layer.fc1.bias.data_ptr(), layer.fc2.weight.data_ptr(), layer.fc2.bias.data_ptr(),
        g.down.weight.data_ptr(), g.up.weight.data_ptr(), g.up.bias.data_ptr(), y.data_ptr(), None,
    )  # fmt: skip
    size = lib.gsmlp_cpu_workspace_size(ctypes.byref(problem), 2)
    workspace = torch.empty(size + 64, dtype=torch.uint8)
    status = getattr(lib, function)(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size + workspace_delta, 2
    )
    return status, lib.gsmlp_last_error().decode()


def kernel_block_mask(layer: GatedSparseMLP, x: torch.Tensor) -> torch.Tensor:
    """The kernel's optional BlockMask output (gsmlp_tensors.block_mask, ABI 2) for x, on x's device."""
    lib = L.load()
    tokens = x.shape[0]
    mask = torch.full((tokens, layer.num_blocks), 7, dtype=torch.uint8, device=x.device)
    y = torch.empty_like(x)
    problem = _calls.make_problem(
        x, layer.fc1.weight, layer.block_size, layer.gate.rank, float(layer.threshold)
    )
    g = layer.gate
    tensors = _calls.make_tensors(
        x, layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias, g.down.weight, g.up.weight,
        g.up.bias, y, None,
    )  # fmt: skip
    tensors.block_mask = mask.data_ptr()
    if x.device.type == "cuda":
        size = lib.gsmlp_cuda_workspace_size(ctypes.byref(problem))
        workspace = torch.empty(size, dtype=torch.uint8, device=x.device)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        status = lib.gsmlp_cuda_forward(
            ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, stream
        )
    else:
        size = lib.gsmlp_cpu_workspace_size(ctypes.byref(problem), 2)
        workspace = torch.empty(size, dtype=torch.uint8)
        status = lib.gsmlp_cpu_forward(
            ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, 2
        )
    _calls.check(lib, "forward", status)
    assert set(mask.unique().tolist()) <= {0, 1}  # every entry written, 0 or 1
    return mask.bool()


def test_block_mask_output_is_the_gates_own_decisions() -> None:
    layer = make_layer(64, 300, 32)  # 10 blocks, the last one partial
    x = torch.randn(600, 64)
    set_sparsity(layer, x, 0.6)
    with torch.no_grad():
        expected = ~(layer.gate(x) <= layer.threshold)
    assert torch.equal(kernel_block_mask(layer, x), expected)


def test_run_packed_with_separate_scratch() -> None:
    """ABI 2: weights packed once into their own buffer, scratch per call (the ONNX Runtime library's way)."""
    lib = L.load()
    layer = make_layer(64, 256, 32)
    x = torch.randn(300, 64)
    y = torch.empty_like(x)
    g = layer.gate
    problem = _calls.make_problem(x, layer.fc1.weight, 32, 16, 0.0)
    tensors = _calls.make_tensors(
        x, layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias, g.down.weight, g.up.weight,
        g.up.bias, y, None,
    )  # fmt: skip
    packed = torch.zeros(lib.gsmlp_cpu_packed_size(ctypes.byref(problem)), dtype=torch.uint8)
    scratch = torch.empty(lib.gsmlp_cpu_scratch_size(ctypes.byref(problem), 3), dtype=torch.uint8)
    p, t = ctypes.byref(problem), ctypes.byref(tensors)

    def run(scratch_bytes: int) -> int:
        return lib.gsmlp_cpu_run_packed(
            p, t, packed.data_ptr(), packed.numel(), scratch.data_ptr(), scratch_bytes, 3, None
        )

    assert run(scratch.numel()) == L.INVALID_ARGUMENT  # nothing packed yet
    assert "gsmlp_cpu_pack_weights" in lib.gsmlp_last_error().decode()
    assert lib.gsmlp_cpu_pack_weights(p, t, packed.data_ptr(), packed.numel(), 1) == L.OK
    assert run(scratch.numel() - 1) == L.WORKSPACE_TOO_SMALL
    assert "scratch has" in lib.gsmlp_last_error().decode()
    assert run(scratch.numel()) == L.OK
    torch.testing.assert_close(y, reference(layer, x)[0], **TOLERANCE[torch.float32])


def test_abi_statuses() -> None:
    assert _abi_call() == (L.OK, "")
    status, message = _abi_call(workspace_delta=-1)
    assert status == L.WORKSPACE_TOO_SMALL and "needs" in message
    status, message = _abi_call(block_size=0)
    assert status == L.INVALID_ARGUMENT and "block_size is 0" in message
    status, message = _abi_call(stride=10)
    assert status == L.INVALID_ARGUMENT and "x_row_stride is 10" in message
    status, _ = _abi_call(null_w1=True)
    assert status == L.INVALID_ARGUMENT
    status, message = _abi_call(function="gsmlp_cpu_forward_prepacked")
    assert status == L.INVALID_ARGUMENT and "gsmlp_cpu_pack_weights" in message


def test_library_facts() -> None:
    lib = L.load()
    assert lib.gsmlp_abi_version() == L.ABI_VERSION == 3  # 3: MultiScaleDeformableAttention
    assert kernels.cpu_isa() in ("avx512f", "avx2-fma", "portable")
    if not kernels.cuda_built():  # a CPU-only build must say so from its CUDA entry point
        status = lib.gsmlp_cuda_forward(None, None, None, 0, None)
        assert status == L.NOT_BUILT


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps (Linux only)")
def test_kernel_threads_join_torchs_openmp_runtime() -> None:
    # Two OpenMP runtimes in one process spin against each other for the cores (docs/PERFORMANCE.md):
    # the kernel must bind to the libgomp that torch already loaded, not bring a second one.
    L.load()
    with open("/proc/self/maps") as maps:
        runtimes = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    assert len(runtimes) == 1, f"more than one OpenMP runtime is mapped: {sorted(runtimes)}"


def test_op_error_names_the_bad_value() -> None:
    layer = make_layer(64, 256, 32)
    with pytest.raises(GsmlpError, match="block_size is 0"):
        torch.ops.gsmlp.gated_sparse_mlp(
            torch.randn(2, 64), layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias,
            layer.gate.down.weight, layer.gate.up.weight, layer.gate.up.bias, 0, 0.0, 0,
        )  # fmt: skip
    with pytest.raises(GsmlpError, match="torch.bfloat16"):
        run_layer(layer.to(torch.bfloat16), torch.randn(2, 64, dtype=torch.bfloat16))


def test_fake_implementation_gives_shapes() -> None:
    layer = make_layer(64, 256, 32)
    with torch._subclasses.fake_tensor.FakeTensorMode():
        fake_layer = make_layer(64, 256, 32)
        y, active = run_layer(fake_layer, torch.randn(3, 5, 64))
    assert y.shape == (3, 5, 64) and active.shape == (3, 5) and active.dtype == torch.int32
    del layer


# --- the module hook and install() ------------------------------------------------------------------


def test_install_runs_the_kernel_and_meters_sparsity() -> None:
    layer = make_layer(64, 256, 32)
    x = torch.randn(200, 64)
    set_sparsity(layer, x, 0.75)
    with torch.no_grad():
        expected = layer(x)
        expected_sparsity = layer.meter.sparsity
        layer.meter.reset()
        assert kernel_hook.install(layer) == 1 and layer.kernel is kernel_hook.module_kernel
        y = layer(x)
    torch.testing.assert_close(y, expected, **TOLERANCE[torch.float32])
    assert layer.meter.sparsity == pytest.approx(expected_sparsity)
    kernel_hook.uninstall(layer)
    assert layer.kernel is None


def test_install_on_a_tiny_detector(family: str) -> None:
    model = wrap_ffns(make_tiny_model(family), block_size=16)
    for _, layer in gated_layers(model):
        layer.attach_gate(MicroGate(layer.d_model, layer.num_blocks, 4), threshold=0.0)
    set_mode(model, "gated")
    pixels = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
        assert kernel_hook.install(model) == len(list(gated_layers(model)))
        actual = model(pixel_values=pixels).logits
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_gradients_fall_back_to_the_reference() -> None:
    layer = make_layer(64, 256, 32).requires_grad_(True)
    kernel_hook.install(layer)
    x = torch.randn(4, 64, requires_grad=True)
    layer(x).sum().backward()  # the op has no autograd: the hook must hand this call to the reference
    assert x.grad is not None


def test_not_built_falls_back_and_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_hook, "load", lambda: None)
    monkeypatch.setattr(kernel_hook, "_warned", False)
    layer = make_layer(64, 256, 32)
    with pytest.warns(RuntimeWarning, match="gsmlp kernels not built: using the PyTorch reference"):
        assert kernel_hook.install(layer) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel_hook.install(layer)  # second time: silent
    assert layer.kernel is None


FORCED_ISA_SCRIPT = """
import sys
import torch
from gsmlp import kernels
sys.path.append(".")  # after gsmlp: the checkout's tests, without its source folder shadowing a plain install
from tests.test_kernels_cpu import check_case
assert kernels.cpu_isa() == sys.argv[1], kernels.cpu_isa()
check_case(37, 64, 300, 32, 0.5, torch.float32)
check_case(9, 64, 256, 8, 0.0, torch.float16)
check_case(50, 96, 200, 16, 0.3, torch.float32)
print("forced isa ok")
"""


@pytest.mark.parametrize(("forced", "isa"), [("portable", "portable"), ("avx2", "avx2-fma")])
def test_lesser_code_paths_match_reference(forced: str, isa: str) -> None:
    # The paths of CPUs without AVX-512 (avx2) or without AVX2/FMA/F16C (portable), forced here by
    # GSMLP_CPU_ISA (read once per process), so that this machine tests every path it can run.
    if forced == "avx2" and kernels.cpu_isa() not in ("avx512f", "avx2-fma"):
        pytest.skip(f"this CPU has no AVX2/FMA/F16C (code path {kernels.cpu_isa()!r})")
    env = dict(os.environ, GSMLP_CPU_ISA=forced)
    result = subprocess.run(
        [sys.executable, "-c", FORCED_ISA_SCRIPT, isa], env=env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0 and "forced isa ok" in result.stdout, result.stderr[-2000:]


def test_new_weights_at_a_reused_address_are_repacked() -> None:
    # Two tensors over one numpy buffer: same address, both at version 0, different values over time.
    layer = make_layer(64, 256, 32)
    x = torch.randn(10, 64)
    set_sparsity(layer, x, 0.5)
    buffer = layer.fc1.weight.detach().numpy().copy()
    args = [layer.fc1.bias, layer.fc2.weight, layer.fc2.bias, layer.gate.down.weight, layer.gate.up.weight]
    op_args = (*args, layer.gate.up.bias, 32, float(layer.threshold), 0)

    def run(w1: torch.Tensor) -> torch.Tensor:
        return torch.ops.gsmlp.gated_sparse_mlp(x, w1, *op_args)[0]

    first = torch.from_numpy(buffer)
    run(first)
    del first
    buffer *= 2.0  # not through torch: no version bump
    second = torch.from_numpy(buffer)
    with torch.no_grad():
        layer.fc1.weight.copy_(second)
    torch.testing.assert_close(run(second), reference(layer, x)[0], **TOLERANCE[torch.float32])
