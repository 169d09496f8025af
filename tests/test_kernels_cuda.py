"""The CUDA kernels against the PyTorch reference; they run only where a CUDA GPU and the CUDA build exist."""

from __future__ import annotations

import ctypes
import os
import shutil

import pytest
import torch

from gsmlp import kernels
from gsmlp.kernels import _library as L
from gsmlp.model.kernel_hook import run_layer
from tests.test_kernels_cpu import TOLERANCE, check_case, kernel_block_mask, make_layer, set_sparsity

needs_gpu = pytest.mark.skipif(
    not (kernels.available() and kernels.cuda_built() and torch.cuda.is_available()),
    reason="no CUDA GPU (or a CPU-only torch / a gsmlp_kernels built without the CUDA toolkit)",
)


@pytest.mark.skipif(not kernels.available(), reason=f"no kernel library: {L.why_not_loaded()}")
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc: the library is built without CUDA")
@pytest.mark.skipif(bool(os.environ.get(L.ENV_VAR)), reason=f"{L.ENV_VAR} chooses another library build")
def test_library_was_built_with_cuda_where_nvcc_exists() -> None:
    # The normal build compiles the CUDA kernels (sm_80/86/89/90) whenever CMake finds the toolkit.
    assert kernels.cuda_built()


CUDA_CASES = [
    (0, 64, 256, 32, 0.5, torch.float32),
    (1, 64, 256, 1, 0.5, torch.float32),
    (7, 128, 300, 32, 0.5, torch.float32),
    (850, 256, 2048, 32, 0.9, torch.float32),
    (850, 256, 1024, 64, 0.0, torch.float16),
    (850, 64, 256, 8, 1.0, torch.float16),
    (20000, 256, 1024, 32, 0.9, torch.float16),
    (20000, 256, 1024, 32, 0.5, torch.float32),
]


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("tokens,d_model,hidden,block_size,sparsity,dtype", CUDA_CASES)
def test_cuda_kernel_matches_reference(tokens, d_model, hidden, block_size, sparsity, dtype) -> None:
    check_case(tokens, d_model, hidden, block_size, sparsity, dtype, device="cuda")


@needs_gpu
@pytest.mark.gpu
def test_cuda_nan_and_non_contiguous_input() -> None:
    layer = make_layer(64, 256, 32).cuda()
    wide = torch.randn(40, 200, device="cuda")
    x = wide[:, 7:71]
    set_sparsity(layer, x, 0.5)
    x[3, 0] = float("nan")
    y, active = run_layer(layer, x)
    assert torch.isnan(y[3]).all() and active[3] == layer.num_blocks
    rest = [i for i in range(40) if i != 3]
    layer.kernel = None
    with torch.no_grad():
        torch.testing.assert_close(y[rest], layer(x[rest]), **TOLERANCE[torch.float32])


@needs_gpu
@pytest.mark.gpu
def test_cuda_workspace_too_small() -> None:
    lib = L.load()
    layer = make_layer(64, 256, 32).cuda()
    x = torch.randn(8, 64, device="cuda")
    y = torch.empty_like(x)
    g = layer.gate
    problem = L.Problem(8, 64, 256, 32, 16, 0.0, L.FP32)
    tensors = L.Tensors(
        x.data_ptr(), 64, layer.fc1.weight.data_ptr(), layer.fc1.bias.data_ptr(), layer.fc2.weight.data_ptr(),
        layer.fc2.bias.data_ptr(), g.down.weight.data_ptr(), g.up.weight.data_ptr(), g.up.bias.data_ptr(),
        y.data_ptr(), None,
    )  # fmt: skip
    size = lib.gsmlp_cuda_workspace_size(ctypes.byref(problem))
    workspace = torch.empty(size, dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    status = lib.gsmlp_cuda_forward(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size - 1, stream
    )
    assert status == L.WORKSPACE_TOO_SMALL
    status = lib.gsmlp_cuda_forward(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, stream
    )
    assert status == L.OK, lib.gsmlp_last_error().decode()


@needs_gpu
@pytest.mark.gpu
def test_cuda_block_mask_output_is_the_gates_own_decisions() -> None:
    layer = make_layer(64, 300, 32).cuda()
    x = torch.randn(600, 64, device="cuda")
    set_sparsity(layer, x, 0.6)
    with torch.no_grad():
        expected = ~(layer.gate(x) <= layer.threshold)
    assert torch.equal(kernel_block_mask(layer, x), expected)


# MultiScaleDeformableAttention: the torch op's CUDA kernel against transformers' module (run on the CPU).

MSDA_CUDA_CASES = ["four levels, locations outside [0, 1]", "a 1x1 level", "batch 2 with padding",
                   "R50 encoder levels, 32 channels", "13 channels (vector tails)"]  # fmt: skip


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("case", MSDA_CUDA_CASES)
@pytest.mark.parametrize("tables_on", ["cuda", "cpu"])  # the kernel reads them, or the host checks them first
def test_cuda_msda_matches_transformers(case: str, tables_on: str) -> None:
    from tests.test_kernels_msda import BOUND, CASES, transformers_reference

    value, shapes, starts, locations, weights = CASES[case]()
    expected = transformers_reference(value, shapes, starts, locations, weights)
    actual = kernels.multi_scale_deformable_attention(
        value.cuda(), shapes.to(tables_on), starts.to(tables_on), locations.cuda(), weights.cuda()
    )
    assert actual.is_cuda and (actual.cpu() - expected).abs().max() <= BOUND


@needs_gpu
@pytest.mark.gpu
def test_cuda_msda_fp16_and_no_queries() -> None:
    from tests.test_kernels_msda import BOUND, CASES, FP16_RELATIVE, attention_case, transformers_reference

    inputs = CASES["four levels, locations outside [0, 1]"]()
    rounded = [t.half() if t.is_floating_point() else t for t in inputs]
    expected = transformers_reference(*[t.double() if t.is_floating_point() else t for t in rounded])
    actual = kernels.multi_scale_deformable_attention(*[t.cuda() for t in rounded]).cpu()
    assert actual.dtype == torch.float16
    assert ((actual.double() - expected).abs() <= FP16_RELATIVE * expected.abs() + BOUND).all()
    empty = attention_case([(4, 4), (2, 2)], queries=0)
    assert kernels.multi_scale_deformable_attention(*[t.cuda() for t in empty]).shape == (2, 0, 32)
