"""Where ONNX Runtime spends an exported detector's time: python benchmarks/ort_profile.py FILE.onnx ...

An experiment, not part of gsmlp: its figures are recorded in docs/PERFORMANCE.md ("What bounds the
Deformable-DETR-R50 speedup"). Each file runs under ONNX Runtime's profiler (the gsmlp op library registered
where it is built; a fixed random image of the file's static size with an all-ones pixel mask), and the
script prints, as JSON, the kernel milliseconds per image: in total, per op type, and for two module
groups, the FFNs (nodes under /mlp/) and Deformable DETR's multi-scale sampling (nodes under
/self_attn/attn/). Profiler times are kernel times only; `gsmlp bench model` times whole runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gsmlp.runtime.ort_session import op_library, session_options

GROUPS = {"ffn": "/mlp/", "deformable_sampling": "/self_attn/attn/"}
KERNEL_SUFFIX = "_kernel_time"


def _static_inputs(session: Any) -> dict[str, np.ndarray]:
    shapes = {i.name: i.shape for i in session.get_inputs()}
    if any(not isinstance(d, int) for shape in shapes.values() for d in shape):
        raise SystemExit(f"needs a file of static size; its inputs are {shapes}")
    rng = np.random.default_rng(0)
    return {
        "pixel_values": rng.standard_normal(shapes["pixel_values"]).astype(np.float32),
        "pixel_mask": np.ones(shapes["pixel_mask"], dtype=np.int64),
    }


def _kernel_events(profile: Path) -> list[dict[str, Any]]:
    events = json.loads(profile.read_text())
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith(KERNEL_SUFFIX)]


def profile_file(path: Path, runs: int, threads: int) -> dict[str, Any]:
    """Kernel ms per image of `path`: total, per op type and per module group (the warm-up run left out)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = session_options(op_library(), threads=threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = _static_inputs(session)
        for _ in range(runs + 1):
            session.run(None, feed)
        events = _kernel_events(Path(session.end_profiling()))
    # The first run is the warm-up: drop each node's first event.
    seen: set[str] = set()
    by_op: collections.Counter[str] = collections.Counter()
    by_group: collections.Counter[str] = collections.Counter()
    for event in events:
        if event["name"] not in seen:
            seen.add(event["name"])
            continue
        by_op[event["args"]["op_name"]] += event["dur"]
        for group, marker in GROUPS.items():
            by_group[group] += event["dur"] if marker in event["name"] else 0
    total = sum(by_op.values())

    def per_image(microseconds: float) -> float:
        return round(microseconds / 1e3 / runs, 1)

    return {
        "file": str(path),
        "runs": runs,
        "threads": threads,
        "total_ms": per_image(total),
        "groups": {g: {"ms": per_image(d), "share": round(d / total, 3)} for g, d in by_group.items()},
        "op_types": {op: {"ms": per_image(d), "share": round(d / total, 3)} for op, d in by_op.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("onnx", nargs="+", type=Path, help="ONNX files written by gsmlp export")
    parser.add_argument("--runs", type=int, default=3, help="profiled runs per file, after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    print(json.dumps([profile_file(path, args.runs, args.threads) for path in args.onnx], indent=1))


if __name__ == "__main__":
    main()
