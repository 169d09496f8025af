"""Parity tolerances per backend and dtype: built-in defaults, overridable by a TOML file (--tolerances).

The file's format (docs/VALIDATION.md): tables named [BACKEND.DTYPE], BACKEND being a backend name or
`default` (every backend), each with any of the KEYS. A key not given keeps its built-in value; anything
else (an unknown table, dtype or key, a value of the wrong type) is refused with the file and table named.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gsmlp.errors import GsmlpError
from gsmlp.paths import require_file
from gsmlp.validation.backend_names import BACKENDS, REFERENCE


@dataclass(frozen=True)
class Tolerance:
    delta_ap: float  # |AP(backend) - AP(reference)|, COCO points 0-100
    max_gate_flip_rate: float  # gated models: gate decisions taken differently / all gate decisions
    # The error against PyTorch fp64, judged by PyTorch's own in the file's dtype (validation/precision.py):
    quantile: float  # which quantile of the scaled errors is compared (besides the maximum)
    quantile_factor: float  # backend's quantile <= this x PyTorch's quantile
    max_factor: float  # backend's maximum <= this x PyTorch's maximum
    floor_ulps: float  # both sides raised to this many units in the last place of the dtype (exact zeros)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# docs/VALIDATION.md, "Where each default comes from", gives the measurements behind every value.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(
        delta_ap=0.1, max_gate_flip_rate=1e-3, quantile=0.999, quantile_factor=4.0, max_factor=8.0,
        floor_ulps=1.0,
    ),
    "fp16": Tolerance(
        delta_ap=0.5, max_gate_flip_rate=1e-2, quantile=0.999, quantile_factor=4.0, max_factor=8.0,
        floor_ulps=1.0,
    ),
}  # fmt: skip

# How many images the fp64 reference covers when the user does not say: every image of a set up to this
# size (shapes-val's 400 included), else this many spread evenly over it. On a CPU an fp64 pass costs 2-4x
# an fp32 one (docs/VALIDATION.md).
DEFAULT_REFERENCE_IMAGES = 500

# The quantile is judged only over a sample with at least this many elements beyond it. Over fewer, the 0.999
# quantile of a few hundred values is their largest or next to it: one element, which max_factor already
# judges, and whose ratio swings widely (docs/VALIDATION.md, "Few images": a correct file's largest-element
# ratio reached 5.6 over 3 images, 1.9 over 10).
QUANTILE_TAIL = 10

# (backend or "default", dtype) -> Tolerance
Tolerances = dict[tuple[str, str], Tolerance]
KEYS = tuple(Tolerance.__dataclass_fields__)
# Keys of earlier releases, refused with what replaced them.
REPLACED_KEYS = {
    "max_abs_diff": "the fixed bound on the largest difference was replaced by the fp64-floor criterion: "
    "set quantile_factor and max_factor instead (docs/VALIDATION.md)",
}
TABLES = ("default", *(name for name in BACKENDS if name != REFERENCE))


def tolerance_for(dtype: str, backend: str = "default", table: Tolerances | None = None) -> Tolerance:
    """The backend's own entry, else the file's default for the dtype, else the built-in one."""
    table = table or {}
    builtin = DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES["fp32"])
    return table.get((backend, dtype)) or table.get(("default", dtype)) or builtin


def _check_value(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise GsmlpError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    if key == "quantile" and not 0 < value < 1:
        raise GsmlpError(f"{where}: quantile must lie strictly between 0 and 1, got {value!r}")
    if key.endswith("_factor") and value < 1:
        raise GsmlpError(
            f"{where}: {key} must be >= 1 (a backend cannot be asked to be more exact than PyTorch), "
            f"got {value!r}"
        )
    return float(value)


def _table_values(where: str, values: object) -> dict[str, float]:
    if not isinstance(values, dict):
        raise GsmlpError(f"{where} must be a table of {', '.join(KEYS)}")
    for key in values:
        if key in REPLACED_KEYS:
            raise GsmlpError(f"{where}: {key} is no longer a key: {REPLACED_KEYS[key]}")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise GsmlpError(f"{where}: unknown key(s) {unknown}; use {', '.join(KEYS)}")
    return {key: _check_value(where, key, value) for key, value in values.items()}


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
        if backend not in TABLES:
            # A misspelled backend would otherwise be read and silently never applied.
            raise GsmlpError(f"{path}: unknown table [{backend}]; use one of {', '.join(TABLES)}")
        if not isinstance(dtypes, dict):
            raise GsmlpError(f"{path}: [{backend}] must hold tables such as [{backend}.fp32], got {dtypes!r}")
        for dtype, values in dtypes.items():
            where = f"{path}: [{backend}.{dtype}]"
            if dtype not in DEFAULT_TOLERANCES:
                raise GsmlpError(f"{where}: unknown dtype {dtype!r}; use {', '.join(DEFAULT_TOLERANCES)}")
            checked = _table_values(where, values)
            base = table.get(("default", dtype)) if backend != "default" else None
            table[(backend, dtype)] = replace(base or DEFAULT_TOLERANCES[dtype], **checked)
    return table
