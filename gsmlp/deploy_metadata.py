"""What a runtime needs to know about a deployable file, carried inside it: one definition for every side.

`gsmlp export` writes these keys into the ONNX file's `metadata_props`, `gsmlp build` copies them into the
engine's JSON (under "metadata"), and every runtime reads them back here: `gsmlp detect`,
`python -m gsmlp.runtime.prepare_image`, and the C++ samples (runtime/cpp/metadata.cpp reads the same keys;
tests run both on the same files). With them a runtime needs nothing but the file to pre-process an image
and decode the outputs:

| key | value (always a string, as ONNX metadata is) |
|---|---|
| `gsmlp.family` | `detr` or `deformable-detr` |
| `gsmlp.mode`, `gsmlp.dtype` | `gated`/`dense`, `fp32`/`fp16`: which PyTorch mode the file reproduces |
| `gsmlp.metadata_version` | `1`: the version of this table |
| `gsmlp.version` | the gsmlp that exported the file |
| `gsmlp.op_domain`, `gsmlp.op_version` | the `GatedSparseMLP` op's domain and opset (gsmlp.op_identity) |
| `gsmlp.plugin_version` | the TensorRT plugin version the nodes name |
| `gsmlp.activation` | `softmax` (DETR: the last class, "no object", is never reported) or `sigmoid` |
| `gsmlp.resize` | `shortest_edge`: DETR's rule (gsmlp.model.resize.resized_size) with the two sizes below |
| `gsmlp.shortest_edge`, `gsmlp.longest_edge` | its sizes, in pixels |
| `gsmlp.image_mean`, `gsmlp.image_std` | three comma-separated numbers each, for pixels scaled to [0, 1] |
| `gsmlp.pad_multiple` | the padded height and width are multiples of it |
| `gsmlp.labels` | a JSON list of label names; entry i names class i ("" where the model has none) |

Plain Python, no torch, onnx or onnxruntime: the deploy side reads it, the exporter writes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gsmlp import __version__
from gsmlp.errors import GsmlpError
from gsmlp.op_identity import DOMAIN, DOMAIN_VERSION, PLUGIN_VERSION

METADATA_VERSION = 1
FAMILY_KEY = "gsmlp.family"  # every file gsmlp ever exported carries it: what tells ours from a foreign one
MODE_KEY = "gsmlp.mode"
DTYPE_KEY = "gsmlp.dtype"
VERSION_KEY = "gsmlp.metadata_version"
GSMLP_VERSION_KEY = "gsmlp.version"
OP_DOMAIN_KEY = "gsmlp.op_domain"
OP_VERSION_KEY = "gsmlp.op_version"
PLUGIN_VERSION_KEY = "gsmlp.plugin_version"
ACTIVATION_KEY = "gsmlp.activation"
RESIZE_KEY = "gsmlp.resize"
SHORTEST_EDGE_KEY = "gsmlp.shortest_edge"
LONGEST_EDGE_KEY = "gsmlp.longest_edge"
MEAN_KEY = "gsmlp.image_mean"
STD_KEY = "gsmlp.image_std"
PAD_MULTIPLE_KEY = "gsmlp.pad_multiple"
LABELS_KEY = "gsmlp.labels"
# The keys of version 1, in the order of the table above: a file lacking any is older than version 1.
REQUIRED_KEYS = (
    FAMILY_KEY, MODE_KEY, DTYPE_KEY, VERSION_KEY, GSMLP_VERSION_KEY, OP_DOMAIN_KEY, OP_VERSION_KEY,
    PLUGIN_VERSION_KEY, ACTIVATION_KEY, RESIZE_KEY, SHORTEST_EDGE_KEY, LONGEST_EDGE_KEY, MEAN_KEY, STD_KEY,
    PAD_MULTIPLE_KEY, LABELS_KEY,
)  # fmt: skip

# How each family turns logits into class scores (gsmlp.model.decoding applies it).
ACTIVATIONS = {"detr": "softmax", "deformable-detr": "sigmoid"}
RESIZE_RULES = ("shortest_edge",)
REEXPORT = "re-export it with `gsmlp export` (and rebuild an engine with `gsmlp build`)"


@dataclass(frozen=True)
class DeployMetadata:
    """Everything pre- and post-processing need, as `gsmlp export` recorded it."""

    family: str
    mode: str
    dtype: str
    shortest_edge: int
    longest_edge: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    pad_multiple: int
    labels: tuple[str, ...]
    activation: str = ""  # derived from the family when empty
    gsmlp_version: str = __version__
    op_domain: str = DOMAIN
    op_version: str = str(DOMAIN_VERSION)
    plugin_version: str = PLUGIN_VERSION
    resize: str = "shortest_edge"

    def __post_init__(self) -> None:
        if not self.activation:
            if self.family not in ACTIVATIONS:
                raise GsmlpError(
                    f"unknown model family {self.family!r}: gsmlp knows {', '.join(ACTIVATIONS)}"
                )
            object.__setattr__(self, "activation", ACTIVATIONS[self.family])

    def label_name(self, label: int) -> str:
        """The name of class `label`, or its number where the file names none."""
        if 0 <= label < len(self.labels) and self.labels[label]:
            return self.labels[label]
        return str(label)

    def to_props(self) -> dict[str, str]:
        """The metadata_props of an ONNX file (string to string), in the table's order."""
        return {
            FAMILY_KEY: self.family,
            MODE_KEY: self.mode,
            DTYPE_KEY: self.dtype,
            VERSION_KEY: str(METADATA_VERSION),
            GSMLP_VERSION_KEY: self.gsmlp_version,
            OP_DOMAIN_KEY: self.op_domain,
            OP_VERSION_KEY: self.op_version,
            PLUGIN_VERSION_KEY: self.plugin_version,
            ACTIVATION_KEY: self.activation,
            RESIZE_KEY: self.resize,
            SHORTEST_EDGE_KEY: str(self.shortest_edge),
            LONGEST_EDGE_KEY: str(self.longest_edge),
            MEAN_KEY: ",".join(repr(float(v)) for v in self.image_mean),
            STD_KEY: ",".join(repr(float(v)) for v in self.image_std),
            PAD_MULTIPLE_KEY: str(self.pad_multiple),
            LABELS_KEY: json.dumps(list(self.labels)),
        }


def labels_from_id2label(id2label: Mapping[int | str, str] | None, count: int) -> tuple[str, ...]:
    """`count` names from a transformers id2label; transformers' placeholders (LABEL_3) become ""."""
    id2label = {int(k): str(v) for k, v in (id2label or {}).items()}
    names = [id2label.get(i, "") for i in range(count)]
    return tuple("" if name == f"LABEL_{i}" else name for i, name in enumerate(names))


def from_props(props: Mapping[str, str], source: str) -> DeployMetadata:
    """Read the metadata back, or say what is missing: a foreign file, an older gsmlp's, a bad value.

    source: how messages name the file ("runs/gated.onnx").
    """
    if FAMILY_KEY not in props:
        raise GsmlpError(
            f"{source} carries no gsmlp metadata (no {FAMILY_KEY} key): it was not written by "
            "`gsmlp export`, so nothing says how to pre-process its images or decode its outputs; export "
            "the checkpoint with `gsmlp export`"
        )
    version = props.get(VERSION_KEY)
    if version is not None and _integer(version) is not None and _integer(version) > METADATA_VERSION:
        raise GsmlpError(
            f"{source} has gsmlp metadata version {version}, newer than this gsmlp {__version__} reads "
            f"({METADATA_VERSION}): update gsmlp, or {REEXPORT} with this one"
        )
    missing = [key for key in REQUIRED_KEYS if key not in props]
    if missing:
        raise GsmlpError(
            f"{source} was exported by an older gsmlp: its metadata lacks {', '.join(missing)}, which the "
            f"runtimes need to pre-process images and decode outputs; {REEXPORT}"
        )
    return DeployMetadata(
        family=_choice(props, FAMILY_KEY, tuple(ACTIVATIONS), source),
        mode=_choice(props, MODE_KEY, ("dense", "gated"), source),
        dtype=_choice(props, DTYPE_KEY, ("fp32", "fp16"), source),
        activation=_choice(props, ACTIVATION_KEY, tuple(sorted(set(ACTIVATIONS.values()))), source),
        resize=_choice(props, RESIZE_KEY, RESIZE_RULES, source),
        shortest_edge=_positive(props, SHORTEST_EDGE_KEY, source),
        longest_edge=_positive(props, LONGEST_EDGE_KEY, source),
        image_mean=_triple(props, MEAN_KEY, source),
        image_std=_triple(props, STD_KEY, source, positive=True),
        pad_multiple=_positive(props, PAD_MULTIPLE_KEY, source),
        labels=_labels(props, source),
        gsmlp_version=props[GSMLP_VERSION_KEY],
        op_domain=props[OP_DOMAIN_KEY],
        op_version=props[OP_VERSION_KEY],
        plugin_version=props[PLUGIN_VERSION_KEY],
    )


def _bad(source: str, key: str, value: str, want: str) -> GsmlpError:
    return GsmlpError(f"{source}: metadata {key} is {value!r}, expected {want}; {REEXPORT}")


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _choice(props: Mapping[str, str], key: str, choices: Sequence[str], source: str) -> str:
    if props[key] not in choices:
        raise _bad(source, key, props[key], "one of " + ", ".join(choices))
    return props[key]


def _positive(props: Mapping[str, str], key: str, source: str) -> int:
    value = _integer(props[key])
    if value is None or value < 1:
        raise _bad(source, key, props[key], "a positive integer")
    return value


def _triple(props: Mapping[str, str], key: str, source: str, positive: bool = False) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in props[key].split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        raise _bad(
            source, key, props[key], f"three {'positive' if positive else 'finite'} comma-separated numbers"
        )
    return values  # type: ignore[return-value]


def _labels(props: Mapping[str, str], source: str) -> tuple[str, ...]:
    try:
        names = json.loads(props[LABELS_KEY])
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise _bad(source, LABELS_KEY, props[LABELS_KEY][:80], "a JSON list of label names")
    return tuple(names)
