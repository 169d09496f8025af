"""Parity tolerances per backend and dtype: built-in defaults, overridable by a TOML file (--tolerances).

The file's format (docs/VALIDATION.md): tables named [BACKEND.DTYPE], BACKEND being a backend name or
`default` (every backend), each with any of delta_ap, max_abs_diff and max_gate_flip_rate (KEYS). A key not
given keeps its built-in value.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gsmlp.errors import GsmlpError
from gsmlp.paths import require_file


@dataclass(frozen=True)
class Tolerance:
    delta_ap: float  # |AP(backend) - AP(reference)|, COCO points 0-100
    # Bounds |out - ref| / max(|ref|, 1) over every logits and pred_boxes element (max_scaled_diff: absolute
    # up to magnitude 1, relative beyond); gated: decisions pinned. The name predates the scaling.
    max_abs_diff: float
    max_gate_flip_rate: float  # gated models: gate decisions taken differently / all gate decisions

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TOLERANCES = {
    "fp32": Tolerance(delta_ap=0.1, max_abs_diff=1e-4, max_gate_flip_rate=1e-3),
    # fp16: the largest logits difference measured on full-size R50 models with real COCO images was 0.048
    # (docs/EXPORT.md, "Measured parity"); the bound leaves 2x for other images and providers.
    "fp16": Tolerance(delta_ap=0.5, max_abs_diff=1e-1, max_gate_flip_rate=1e-2),
}

# (backend or "default", dtype) -> Tolerance
Tolerances = dict[tuple[str, str], Tolerance]
KEYS = ("delta_ap", "max_abs_diff", "max_gate_flip_rate")


def tolerance_for(dtype: str, backend: str = "default", table: Tolerances | None = None) -> Tolerance:
    """The backend's own entry, else the file's default for the dtype, else the built-in one."""
    table = table or {}
    builtin = DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES["fp32"])
    return table.get((backend, dtype)) or table.get(("default", dtype)) or builtin


def load_tolerances(path: str | Path) -> Tolerances:
    """Read a tolerance TOML file; every error names the file and the offending table or key."""
    path = require_file(path, "--tolerances")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise GsmlpError(f"cannot read the tolerance file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GsmlpError(f"{path} is corrupt: not valid TOML ({exc})") from None
    table: Tolerances = {}
    # `default` first, so that a backend's own table builds on it wherever it sits in the file.
    for backend, dtypes in sorted(data.items(), key=lambda item: item[0] != "default"):
        if not isinstance(dtypes, dict):
            raise GsmlpError(f"{path}: [{backend}] must hold tables such as [{backend}.fp32], got {dtypes!r}")
        for dtype, values in dtypes.items():
            where = f"{path}: [{backend}.{dtype}]"
            if dtype not in DEFAULT_TOLERANCES:
                raise GsmlpError(f"{where}: unknown dtype {dtype!r}; use {', '.join(DEFAULT_TOLERANCES)}")
            if not isinstance(values, dict):
                raise GsmlpError(f"{where} must be a table of {', '.join(KEYS)}")
            unknown = sorted(set(values) - set(KEYS))
            if unknown:
                raise GsmlpError(f"{where}: unknown key(s) {unknown}; use {', '.join(KEYS)}")
            for key, value in values.items():
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                    raise GsmlpError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
            base = table.get(("default", dtype), DEFAULT_TOLERANCES[dtype]) if backend != "default" else None
            base = base or DEFAULT_TOLERANCES[dtype]
            table[(backend, dtype)] = replace(base, **{k: float(v) for k, v in values.items()})
    return table
