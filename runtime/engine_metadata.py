"""The JSON written beside every engine (`model.engine.json`), and the check that an engine fits this machine.

TensorRT engines run only under the TensorRT version and on the GPU compute capability they were built for;
deserializing a mismatched one fails with an internal serialization assertion. Reading the JSON first lets the
runner say which of the two differs. Pure Python: no tensorrt, no pycuda.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gsmlp.deploy_metadata import DeployMetadata, from_props
from gsmlp.errors import GsmlpError

FORMAT = "gsmlp-trt-engine/1"


def metadata_path(engine_path: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def read_metadata(engine_path: str | Path) -> dict[str, Any] | None:
    """The engine's JSON, or None where there is none (an engine built by trtexec, say)."""
    path = metadata_path(engine_path)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GsmlpError(f"cannot read the engine metadata {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GsmlpError(f'{path} is not a gsmlp engine metadata file (expected "format": "{FORMAT}")')
    return meta


def is_gsmlp_engine(engine_path: str | Path) -> bool:
    """An engine `gsmlp build` wrote: the gsmlp metadata JSON sits beside it."""
    try:
        return Path(engine_path).is_file() and read_metadata(engine_path) is not None
    except GsmlpError:
        return False


def compatibility_problems(
    meta: dict[str, Any], tensorrt_version: str, compute_capability: str, gpu_name: str = ""
) -> list[str]:
    """Every reason why an engine described by `meta` cannot run here; empty when it can."""
    problems = []
    built_version = str(meta.get("tensorrt_version", ""))
    if built_version != tensorrt_version:
        problems.append(
            f"TensorRT version differs: the engine was built with TensorRT {built_version or '(unknown)'}, "
            f"this machine runs TensorRT {tensorrt_version}"
        )
    gpu = meta.get("gpu") or {}
    built_cc = str(gpu.get("compute_capability", ""))
    if built_cc != compute_capability:
        here = f"{gpu_name} (compute capability {compute_capability})" if gpu_name else compute_capability
        problems.append(
            f"GPU compute capability differs: the engine was built for {gpu.get('name', '(unknown GPU)')} "
            f"(compute capability {built_cc or '(unknown)'}), this machine has {here}"
        )
    return problems


def check_compatible(
    engine_path: str | Path,
    meta: dict[str, Any],
    tensorrt_version: str,
    compute_capability: str,
    gpu_name: str = "",
) -> None:
    """Raise GsmlpError naming what differs, and how to fix it, if the engine cannot run here."""
    problems = compatibility_problems(meta, tensorrt_version, compute_capability, gpu_name)
    if problems:
        raise GsmlpError(
            f"the engine {engine_path} cannot run on this machine: "
            + "; ".join(problems)
            + ". Rebuild it here with `gsmlp build` (engines are tied to one TensorRT version and one GPU "
            "compute capability)."
        )


def model_metadata(engine_path: str | Path, meta: dict[str, Any] | None) -> DeployMetadata:
    """What pre- and post-processing need, from the engine's JSON (`gsmlp build` copies it from the ONNX)."""
    json_path = metadata_path(engine_path)
    if meta is None:
        raise GsmlpError(
            f"the engine {engine_path} has no {json_path.name} beside it (built by trtexec, or copied "
            "without it?): nothing says how to pre-process its images or decode its outputs; build it with "
            "`gsmlp build`"
        )
    if not isinstance(meta.get("metadata"), dict):
        raise GsmlpError(
            f"{json_path} was written by an older `gsmlp build`: it lacks the model metadata "
            '("metadata": the family, preprocessing and label names); rebuild the engine with '
            "`gsmlp build` from a file of `gsmlp export`"
        )
    return from_props(meta["metadata"], f"the engine {engine_path} ({json_path.name})")
