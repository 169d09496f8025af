"""How the op's time depends on what the caches hold: python benchmarks/ffn_cache_state.py [--threads N].

An experiment, not part of gsmlp: its figures are recorded in docs/PERFORMANCE.md ("Why the DETR shape's
sparse time has two modes"). Times the `GatedSparseMLP` op through the gsmlp ONNX Runtime library on one
`gsmlp bench ffn` case (default: the DETR shape at block sparsity 0.9), in four cache states, each run
preceded by: another run of the op (warm); a write over a buffer larger than the last-level cache
(flushed); a run of the dense FFN session, as `gsmlp bench ffn` interleaves them (after dense); a 5 ms
sleep (after sleep); and the dense FFN warm and flushed. Prints the median ms of each as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from gsmlp.validation.ffn_bench import SHAPES, synthetic_problem
from gsmlp.validation.ffn_bench_onnxruntime import bench_session, dense_graph, op_graph

FLUSH_BYTES = 256 * 2**20  # larger than any last-level cache this runs on


def _ms(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="detr", choices=sorted(SHAPES))
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()

    layer, x, thresholds = synthetic_problem(args.shape, args.block_size, 16, [args.sparsity])
    feed = {"X": x.numpy().astype(np.float32)}

    sparse = bench_session(op_graph(layer, thresholds[args.sparsity], "fp32"), "library", args.threads)
    dense = bench_session(dense_graph(layer, "fp32"), "function", args.threads)
    flush = np.zeros(FLUSH_BYTES // 4, dtype=np.float32)
    prepare = {
        "warm": lambda: sparse.run(None, feed),
        "flushed": lambda: flush.__iadd__(1.0),
        "after_dense": lambda: dense.run(None, feed),
        "after_sleep": lambda: time.sleep(0.005),
    }
    times: dict[str, list[float]] = {state: [] for state in prepare}
    times.update(dense_warm=[], dense_flushed=[])
    for _ in range(10):
        sparse.run(None, feed)
        dense.run(None, feed)
    for _ in range(args.repeat):
        for state, before in prepare.items():
            before()
            times[state].append(_ms(lambda: sparse.run(None, feed)))
        # The dense FFN in the two extreme states, for comparison.
        dense.run(None, feed)
        times["dense_warm"].append(_ms(lambda: dense.run(None, feed)))
        flush += 1.0
        times["dense_flushed"].append(_ms(lambda: dense.run(None, feed)))
    medians = {state: round(float(np.median(values)), 3) for state, values in times.items()}
    print(json.dumps({"shape": args.shape, "sparsity": args.sparsity, "threads": args.threads, **medians}))


if __name__ == "__main__":
    main()
