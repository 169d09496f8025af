"""Tensor-level calls into the C ABI: build the structs from torch tensors, run, check the status."""

from __future__ import annotations

import ctypes
import statistics
import time
import weakref

import torch

from gsmlp.errors import GsmlpError
from gsmlp.kernels import _library as L

DTYPES = {torch.float32: L.FP32, torch.float16: L.FP16}


class KernelError(GsmlpError):
    """A kernel call returned a status other than GSMLP_OK."""

    def __init__(self, function: str, status: int, message: str) -> None:
        super().__init__(f"{function} failed: {message}")
        self.status = status


def _pointer(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def make_problem(
    x2d: torch.Tensor, w1: torch.Tensor, block_size: int, rank: int, threshold: float
) -> L.Problem:
    if x2d.dtype not in DTYPES:
        raise GsmlpError(f"dtype {x2d.dtype} is not supported by the kernels: use float32 or float16")
    return L.Problem(
        tokens=x2d.shape[0],
        d_model=x2d.shape[1],
        hidden=w1.shape[0],
        block_size=block_size,
        rank=rank,
        threshold=threshold,
        dtype=DTYPES[x2d.dtype],
    )


def make_tensors(x2d, w1, b1, w2, b2, gate_down, gate_up, gate_bias, y, active) -> L.Tensors:
    return L.Tensors(
        x=_pointer(x2d),
        x_row_stride=x2d.stride(0) if x2d.shape[0] > 1 else x2d.shape[1],
        w1=_pointer(w1),
        b1=_pointer(b1),
        w2=_pointer(w2),
        b2=_pointer(b2),
        gate_down_w=_pointer(gate_down),
        gate_up_w=_pointer(gate_up),
        gate_up_b=_pointer(gate_bias),
        y=_pointer(y),
        active_blocks=_pointer(active),
    )


def check(lib: ctypes.CDLL, function: str, status: int) -> None:
    if status != L.OK:
        raise KernelError(function, status, L.status_message(lib, status))


def cpu_forward(lib: ctypes.CDLL, problem: L.Problem, tensors: L.Tensors, threads: int) -> None:
    """One call that packs the weights and runs (the TensorRT plugin's way)."""
    size = lib.gsmlp_cpu_workspace_size(ctypes.byref(problem), threads)
    workspace = torch.empty(max(size, 1), dtype=torch.uint8)
    status = lib.gsmlp_cpu_forward(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, threads
    )
    check(lib, "gsmlp_cpu_forward", status)


class PackedWeights:
    """Workspaces holding packed weights, reused while the very same weight tensors are unchanged.

    The key holds every weight's data pointer and version counter (bumped by any in-place change), so a
    training step or load_state_dict re-packs. Each entry also keeps weak references to its tensors: a
    new tensor that happens to reuse a freed tensor's address must not hit the old packing. Entries of
    freed tensors are dropped; at most `capacity` entries are kept, the least recently used go first.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.entries: dict[tuple, tuple[torch.Tensor, list]] = {}

    @staticmethod
    def key(problem: L.Problem, weights: list[torch.Tensor | None], threads: int) -> tuple:
        parts = [(w.data_ptr(), w._version, tuple(w.shape)) if w is not None else None for w in weights]
        shape = (problem.d_model, problem.hidden, problem.block_size, problem.rank, problem.dtype)
        return (shape, threads, tuple(parts))

    @staticmethod
    def _same_tensors(refs: list, weights: list[torch.Tensor | None]) -> bool:
        return all(
            (r is None and w is None) or (r is not None and r() is w)
            for r, w in zip(refs, weights, strict=True)
        )

    def _drop_freed(self) -> None:
        for key in [
            k for k, (_, refs) in self.entries.items() if any(r is not None and r() is None for r in refs)
        ]:
            del self.entries[key]

    def workspace(self, lib, problem, tensors, weights, threads: int) -> torch.Tensor:
        key = self.key(problem, weights, threads)
        entry = self.entries.pop(key, None)
        if entry is None or not self._same_tensors(entry[1], weights):
            self._drop_freed()
            size = lib.gsmlp_cpu_workspace_size(ctypes.byref(problem), threads)
            workspace = torch.empty(max(size, 1), dtype=torch.uint8)
            status = lib.gsmlp_cpu_pack_weights(
                ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, threads
            )
            check(lib, "gsmlp_cpu_pack_weights", status)
            entry = (workspace, [None if w is None else weakref.ref(w) for w in weights])
        self.entries[key] = entry  # most recent last
        while len(self.entries) > self.capacity:
            self.entries.pop(next(iter(self.entries)))
        return entry[0]


PACKED = PackedWeights()


def cpu_forward_prepacked(lib, problem: L.Problem, tensors: L.Tensors, weights: list, threads: int) -> None:
    workspace = PACKED.workspace(lib, problem, tensors, weights, threads)
    status = lib.gsmlp_cpu_forward_prepacked(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), workspace.numel(), threads
    )
    check(lib, "gsmlp_cpu_forward_prepacked", status)


def cuda_forward(lib: ctypes.CDLL, problem: L.Problem, tensors: L.Tensors, device: torch.device) -> None:
    size = lib.gsmlp_cuda_workspace_size(ctypes.byref(problem))
    workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=device)
    stream = torch.cuda.current_stream(device).cuda_stream
    status = lib.gsmlp_cuda_forward(
        ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, stream
    )
    check(lib, "gsmlp_cuda_forward", status)


def pack_weights_ms(
    x2d: torch.Tensor, weights: tuple, block_size: int, threshold: float, threads: int, repeat: int
) -> float:
    """Median ms of one gsmlp_cpu_pack_weights call: what a caller pays once per weight change.

    weights: (w1, b1, w2, b2, gate_down, gate_up, gate_bias), torch Linear layout.
    """
    lib = L.load()
    problem = make_problem(x2d, weights[0], block_size, weights[4].shape[0], threshold)
    tensors = make_tensors(x2d, *weights, x2d, None)
    size = lib.gsmlp_cpu_workspace_size(ctypes.byref(problem), threads)
    workspace = torch.empty(size, dtype=torch.uint8)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        status = lib.gsmlp_cpu_pack_weights(
            ctypes.byref(problem), ctypes.byref(tensors), workspace.data_ptr(), size, threads
        )
        times.append((time.perf_counter() - start) * 1e3)
        check(lib, "gsmlp_cpu_pack_weights", status)
    return statistics.median(times)
