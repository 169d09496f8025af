"""Scale-out under torchrun: one process group per run, contiguous image shards, results gathered to rank 0.

With no torchrun environment (no WORLD_SIZE, or WORLD_SIZE=1) nothing is initialised and `Group()` stands
for the one process: every method is then the identity, so a command's one-process path is unchanged.

Under torchrun the group comes from its environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from
the rendezvous, multi-node included): NCCL when the command computes on CUDA (each rank on device
LOCAL_RANK), gloo on the CPU. Every collective is torch.distributed's; every one has the group's timeout
(GSMLP_DIST_TIMEOUT seconds, default 600), so no rank waits forever for a peer that died. A rank that dies
outright is torchrun's to handle: its agent stops the other workers.

Failures: work that any rank may fail at runs inside `group.together(what)`. Every rank leaves it through
one collective that says whether all ranks succeeded, so a failure on one rank becomes an error on every
rank at the same point, before anything is written. Only rank 0 prints it (`error:` names the rank).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gsmlp.errors import GsmlpError

T = TypeVar("T")
TIMEOUT_ENV = "GSMLP_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class PeerFailed(GsmlpError):
    """Another rank failed; this rank stops too. Rank 0 prints it, the other ranks exit quietly."""


def shard_bounds(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous share of `count` items; sizes differ by at most one, no padding.

    Every item goes to exactly one rank (detectron2's InferenceSampler splits the same way), so results
    gathered from all ranks hold each image once and need no de-duplication.
    """
    per_rank, extra = divmod(count, world_size)
    start = rank * per_rank + min(rank, extra)
    return start, start + per_rank + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Group:
    """How this process runs: rank `rank` of `world_size`; `backend` None for one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def shard(self, items: Sequence[T]) -> list[T]:
        start, end = shard_bounds(len(items), self.rank, self.world_size)
        return list(items[start:end])

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` in rank order on rank 0 (None on the others). Picklable values only."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        found: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, found, dst=0)
        return found

    def all_gather(self, value: T) -> list[T]:
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        found: list[Any] = [None] * self.world_size
        dist.all_gather_object(found, value)
        return found

    def sum(self, tensor):  # torch.Tensor -> torch.Tensor, summed over ranks (a new tensor, same device)
        """The element-wise sum over ranks, in float64/int64 so that the order of ranks cannot round."""
        if not self.distributed:
            return tensor
        import torch
        import torch.distributed as dist

        wide = torch.float64 if tensor.is_floating_point() else torch.int64
        buffer = tensor.detach().to(device=self._device(), dtype=wide).clone()
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        return buffer.to(device=tensor.device, dtype=tensor.dtype)

    def max(self, tensor):  # torch.Tensor -> torch.Tensor, the element-wise maximum over ranks
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        buffer = tensor.detach().to(device=self._device()).clone()
        dist.all_reduce(buffer, op=dist.ReduceOp.MAX)
        return buffer.to(tensor.device)

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` on every rank (picklable values)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _device(self):
        import torch

        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def torch_device(self, device: str):  # str -> torch.device
        """Where this rank computes for `--device`: the CPU, or its GPU (LOCAL_RANK under torchrun)."""
        import torch

        if device != "cuda":
            return torch.device(device)
        return torch.device("cuda", self.local_rank) if self.distributed else torch.device("cuda")

    @contextlib.contextmanager
    def together(self, what: str) -> Iterator[None]:
        """Run a block that any rank may fail at; every rank learns, at its end, whether all succeeded."""
        if not self.distributed:
            yield
            return
        try:
            yield
        except Exception as exc:
            self._agree(what, _describe(exc))
            raise
        self._agree(what, None)

    def _agree(self, what: str, problem: str | None) -> None:
        problems = self.all_gather(problem)
        failed = [(rank, text) for rank, text in enumerate(problems) if text is not None]
        if failed and problem is None:
            rank, text = failed[0]
            more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
            raise PeerFailed(f"rank {rank} of {self.world_size} failed while {what}{more}: {text}")

    def report(self, images_per_rank: Sequence[int]) -> dict:
        """The `distributed` entry of a report: how the run was split."""
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "images_per_rank": [int(n) for n in images_per_rank],
        }

    def close(self, finished: bool = False) -> None:
        """Tear the group down. `finished`: every rank got here without an error, so they first meet in a
        barrier: a rank that destroys its group while a peer still completes the last collective with it
        can abort in gloo's teardown ("terminate called without an active exception", 1 run in 6 of a
        two-rank eval here). After an error the ranks do not wait for each other."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                if finished:
                    dist.barrier()
                dist.destroy_process_group()


ONE_PROCESS = Group()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GsmlpError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def is_rank_zero() -> bool:
    """Rank 0 of a torchrun group, or the one process: the only one that writes outputs, holds their locks
    (gsmlp.locks) and prints the `error:` line, which also reports any other rank's failure (agreed through
    `together`); the others exit non-zero quietly, so a run shows each failure once."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def torchrun_environment() -> bool:
    """Whether this process was started by torchrun (or anything that sets its variables) with peers."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _env_int(name: str) -> int:
    text = os.environ.get(name)
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GsmlpError(
            f"torchrun environment: {name}={text!r} is not a whole number; start gsmlp with "
            "`torchrun --nproc-per-node N -m gsmlp ...` or set RANK, WORLD_SIZE and LOCAL_RANK"
        ) from None


def _timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise GsmlpError(f"{TIMEOUT_ENV}={text!r}: give the process-group timeout in seconds, above 0")
    return datetime.timedelta(seconds=seconds)


@contextlib.contextmanager
def process_group(device: str = "cpu") -> Iterator[Group]:
    """The run's group (see start_group), torn down when the command ends, however it ends."""
    group = start_group(device)
    try:
        yield group
    except BaseException:
        group.close()
        raise
    group.close(finished=True)


def start_group(device: str = "cpu") -> Group:
    """The process group of this run: `Group()` without torchrun, else one initialised from its env."""
    if not torchrun_environment():
        return Group()
    import torch
    import torch.distributed as dist

    world_size = _env_int("WORLD_SIZE")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank < world_size:
        raise GsmlpError(f"torchrun environment: RANK={rank} is outside 0..{world_size - 1}")
    timeout = _timeout()
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise GsmlpError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} CUDA devices; "
                "give torchrun --nproc-per-node at most the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    kwargs = {"device_id": torch.device("cuda", local_rank)} if backend == "nccl" else {}
    dist.init_process_group(backend, timeout=timeout, **kwargs)
    pin_runtimes_to_local_gpu(local_rank)
    return Group(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def pin_runtimes_to_local_gpu(local_rank: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """Each rank's TensorRT and ONNX Runtime CUDA sessions on GPU LOCAL_RANK, not all on GPU 0: they take
    their GPU from CUDA_DEVICE (gsmlp.gpu_choice). One set by the user is kept."""
    from gsmlp.gpu_choice import CUDA_DEVICE_ENV

    environ.setdefault(CUDA_DEVICE_ENV, str(local_rank))
