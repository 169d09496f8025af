"""Measure the CPU algorithm choices of docs/PERFORMANCE.md ("Why blocks bucketed by token").

    python benchmarks/cpu_algorithms.py [--repeat N] [--sparsity S]

An experiment, not part of gsmlp. For each encoder shape, with a random gate drawing per-token masks at block
sparsity S (block 32):
- per-token gather vs bucketing: the kernel's chunk cap at 1 token (each token gathers its own blocks: every
  weight block is re-read per token) up to 256 tokens (each block's weights are read once per chunk for all
  the chunk's tokens that need it). The production library has no such setting, so each cap is a library of
  its own, built here with the CMake option GSMLP_CPU_CHUNK_TOKENS into build/chunk-cap-N/, and measured in a
  child process that loads it through GSMLP_KERNELS_LIBRARY.
- token tiles sharing one block mask: the fraction of blocks such a tile must compute is the union of its
  tokens' masks; measured on the same masks, it bounds that scheme's speedup at 1 / union.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from gsmlp.validation import ffn_bench

CHUNK_CAPS = (1, 16, 64, 256)
TILE_SIZES = (6, 16, 64)
REPOSITORY = Path(__file__).resolve().parents[1]


def _one_cap(shape: str, sparsity: float, repeat: int) -> dict:
    tokens, d_model, hidden = ffn_bench.SHAPES[shape]
    layer = ffn_bench.random_gated_layer(d_model, hidden, 32, rank=32)
    x = torch.randn(tokens, d_model, generator=torch.Generator().manual_seed(1))
    threshold = ffn_bench.threshold_for_sparsity(layer, x, sparsity)
    case = ffn_bench.measure(
        shape, layer, x, threshold, threads=torch.get_num_threads(), repeat=repeat, warmup=1
    )
    return {"dense_ms": case.dense_ms, "sparse_ms": case.sparse_ms, "speedup": case.speedup}


def union_fractions(shape: str, sparsity: float) -> dict[int, float]:
    tokens, d_model, hidden = ffn_bench.SHAPES[shape]
    layer = ffn_bench.random_gated_layer(d_model, hidden, 32, rank=32)
    x = torch.randn(tokens, d_model, generator=torch.Generator().manual_seed(1))
    threshold = ffn_bench.threshold_for_sparsity(layer, x, sparsity)
    with torch.no_grad():
        active = ~(layer.gate(x) <= threshold)
    fractions = {}
    for tile in TILE_SIZES:
        usable = tokens // tile * tile
        union = active[:usable].reshape(-1, tile, active.shape[-1]).any(1)
        fractions[tile] = round(union.float().mean().item(), 4)
    return fractions


def build_capped_library(cap: int) -> Path:
    """libgsmlp_kernels.so with the chunk cap compiled in (CPU only), built once per cap."""
    build = REPOSITORY / "build" / f"chunk-cap-{cap}"
    configure = ["cmake", "-S", str(REPOSITORY), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 "-DGSMLP_WITH_CUDA=OFF", f"-DGSMLP_CPU_CHUNK_TOKENS={cap}"]  # fmt: skip
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "gsmlp_kernels", "-j"], check=True)
    return build / "plugins" / "kernels" / "libgsmlp_kernels.so"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # shape measured in a child process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_cap(args.child, args.sparsity, args.repeat)))
        return
    print(f"block sparsity {args.sparsity}, block 32, threads {torch.get_num_threads()}")
    libraries = {cap: build_capped_library(cap) for cap in CHUNK_CAPS}
    for shape in ffn_bench.SHAPES:
        for cap, library in libraries.items():
            env = dict(os.environ, GSMLP_KERNELS_LIBRARY=str(library))
            command = [sys.executable, __file__, "--child", shape]
            command += ["--repeat", str(args.repeat), "--sparsity", str(args.sparsity)]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{shape:<11} chunk cap {cap:>3} tokens: dense {result['dense_ms']:8.2f} ms  "
                  f"sparse {result['sparse_ms']:8.2f} ms  speedup {result['speedup']:.2f}x")  # fmt: skip
        for tile, fraction in union_fractions(shape, args.sparsity).items():
            print(f"{shape:<11} shared-mask tile of {tile:>2} tokens computes {fraction:.1%} of blocks "
                  f"-> at most {1 / fraction:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
