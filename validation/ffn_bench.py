"""Gated kernel (gate included) vs the dense FFN, same device, dtype and threads, timed in one run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from gsmlp import kernels
from gsmlp.errors import GsmlpError
from gsmlp.model.gated_mlp import GatedSparseMLP, MicroGate
from gsmlp.model.placement import require_device

# The encoder FFNs that dominate the FFN time of each family (d_model 256, R50 backbones).
SHAPES = {"detr": (850, 256, 2048), "deformable": (20000, 256, 1024)}
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class Case:
    name: str
    tokens: int
    d_model: int
    hidden: int
    block_size: int
    sparsity: float  # measured from the kernel's active blocks
    target_sparsity: float | None
    dtype: str
    device: str
    threads: int
    dense_ms: float
    sparse_ms: float
    speedup: float
    pack_ms: float | None  # CPU: one-off weight packing, not part of sparse_ms (see docs/PERFORMANCE.md)
    # pytorch: the torch op against F.linear/relu/F.linear; onnxruntime: the op library against the dense
    # MatMul-Relu-MatMul subgraph in ONNX Runtime (validation.ffn_bench_onnxruntime).
    backend: str = "pytorch"

    def as_dict(self) -> dict:
        return asdict(self)


def random_gated_layer(
    d_model: int, hidden: int, block_size: int, rank: int, seed: int = 0
) -> GatedSparseMLP:
    torch.manual_seed(seed)
    layer = GatedSparseMLP(
        torch.nn.Linear(d_model, hidden), torch.nn.Linear(hidden, d_model), block_size=block_size
    )
    layer.attach_gate(MicroGate(d_model, layer.num_blocks, rank), threshold=0.0)
    layer.set_mode("gated")
    return layer.eval().requires_grad_(False)


def threshold_for_sparsity(layer: GatedSparseMLP, x: torch.Tensor, sparsity: float) -> float:
    """The gate-logit quantile that leaves `sparsity` of the (token, block) pairs inactive: each token's
    mask is its own, drawn by the random gate from its own input."""
    if sparsity <= 0.0:
        return float("-inf")
    logits = layer.gate(x.float()).flatten()
    sample = logits[torch.randperm(logits.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    return float(torch.quantile(sample.double(), sparsity))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(dense: Callable[[], object], sparse: Callable[[], object], device, repeat: int, warmup: int):
    """Median ms of each, the two interleaved so that load changes on a shared machine hit both alike."""
    dense_times, sparse_times = [], []
    for i in range(warmup + repeat):
        for fn, times in ((dense, dense_times), (sparse, sparse_times)):
            _synchronize(device)
            start = time.perf_counter()
            fn()
            _synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(dense_times), statistics.median(sparse_times)


def _kernel_args(layer: GatedSparseMLP, threshold: float) -> tuple:
    g = layer.gate
    weights = (layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias)
    return (*weights, g.down.weight, g.up.weight, g.up.bias, layer.block_size, threshold)


def time_pack_ms(layer: GatedSparseMLP, x: torch.Tensor, threads: int, repeat: int) -> float:
    """One gsmlp_cpu_pack_weights call: what a caller pays once per weight change."""
    args = _kernel_args(layer, float(layer.threshold))
    x2d = x.reshape(-1, x.shape[-1])
    return kernels.pack_weights_ms(x2d, args[:7], layer.block_size, 0.0, threads, repeat)


def measure(
    name: str, layer: GatedSparseMLP, x: torch.Tensor, threshold: float, *,
    threads: int, repeat: int, warmup: int, target: float | None = None,
) -> Case:  # fmt: skip
    """Time the kernel on `layer` (its gate, block size and weights) against F.linear/relu/F.linear."""
    device = x.device
    args = _kernel_args(layer, threshold)
    w1, b1, w2, b2 = args[:4]
    with torch.no_grad():
        _, active = torch.ops.gsmlp.gated_sparse_mlp(x, *args, threads)
        dense_ms, sparse_ms = time_pair(
            lambda: F.linear(F.relu(F.linear(x, w1, b1)), w2, b2),
            lambda: torch.ops.gsmlp.gated_sparse_mlp(x, *args, threads),
            device, repeat, warmup,
        )  # fmt: skip
    tokens = x.numel() // x.shape[-1]
    sparsity = 1.0 - active.double().sum().item() / max(tokens * layer.num_blocks, 1)
    pack = time_pack_ms(layer, x, threads, max(3, repeat // 3)) if device.type == "cpu" else None
    return Case(
        name, tokens, layer.d_model, layer.hidden, layer.block_size, round(sparsity, 4), target,
        {torch.float32: "fp32", torch.float16: "fp16"}[x.dtype], device.type, threads,
        round(dense_ms, 3), round(sparse_ms, 3), round(dense_ms / sparse_ms, 3), pack and round(pack, 3),
    )  # fmt: skip


def synthetic_problem(
    shape: str, block_size: int, rank: int, sparsities: list[float]
) -> tuple[GatedSparseMLP, torch.Tensor, dict[float, float]]:
    """One SHAPES case: a random gated layer, its input and the threshold for each target sparsity. Both
    backends of `gsmlp bench ffn` time exactly these problems."""
    tokens, d_model, hidden = SHAPES[shape]
    layer = random_gated_layer(d_model, hidden, block_size, rank)
    x = torch.randn(tokens, d_model, generator=torch.Generator().manual_seed(1))
    return layer, x, {s: threshold_for_sparsity(layer, x, s) for s in sparsities}


def synthetic_cases(
    *, device: torch.device, dtype: torch.dtype, threads: int, repeat: int, warmup: int, block_size: int,
    rank: int, shapes: list[str], sparsities: list[float], progress=None,
) -> list[Case]:  # fmt: skip
    """The shapes x sparsities grid with a random gate, masks drawn per token."""
    cases = []
    for shape in shapes:
        layer, x, thresholds = synthetic_problem(shape, block_size, rank, sparsities)
        layer, x = layer.to(device=device, dtype=dtype), x.to(device=device, dtype=dtype)
        for sparsity in sparsities:
            case = measure(
                shape, layer, x, thresholds[sparsity], threads=threads, repeat=repeat, warmup=warmup,
                target=sparsity,
            )  # fmt: skip
            cases.append(case)
            if progress:
                progress(case)
    return cases


def check_runnable(device: torch.device, dtype: torch.dtype) -> None:
    lib = kernels.load()
    if lib is None:
        raise GsmlpError(
            f"gsmlp kernels not built: {kernels.why_not_loaded()}; reinstall gsmlp with a C++ compiler"
        )
    if device.type == "cuda":
        if not lib.gsmlp_cuda_built():
            raise GsmlpError("--device cuda: this gsmlp_kernels library was built without the CUDA toolkit")
        require_device(device.type)
    if device.type == "cpu" and dtype == torch.float16:
        # fp16 storage works on the CPU, but torch's dense fp16 CPU GEMM is no fair baseline.
        print("note: CPU fp16 compares against torch's fp16 CPU path; fp32 is the CPU reference case")
