"""Backends: one interface, `run(pixel_values, pixel_mask) -> {"logits", "pred_boxes"}`, numpy in and out.

Every backend (PyTorch, ONNX Runtime, TensorRT in gsmlp.runtime) takes the same preprocessed arrays, so
parity compares computations, never preprocessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.exporter.graph import check_loadable, expose_block_masks, gated_nodes
from gsmlp.paths import read_regular_bytes, require_file
from gsmlp.runtime.ort_session import open_session

OUTPUTS = ("logits", "pred_boxes")
NO_GATED_NODES = "none (dense file)"


class Backend(Protocol):
    name: str

    def run(self, pixel_values: np.ndarray, pixel_mask: np.ndarray) -> dict[str, np.ndarray]: ...


class PyTorchBackend:
    """The loaded gsmlp model, in the modes it was given: the reference of every parity check."""

    name = "pytorch"

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def run(self, pixel_values: np.ndarray, pixel_mask: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outputs = self.model(
                pixel_values=torch.from_numpy(pixel_values), pixel_mask=torch.from_numpy(pixel_mask)
            )
        return {"logits": outputs.logits.float().numpy(), "pred_boxes": outputs.pred_boxes.float().numpy()}


@dataclass
class OnnxFile:
    """One read of an ONNX file: its bytes and their parse (external data, which stays beside the file, not
    loaded). Everything a run needs from the file comes from this one read, so a file replaced meanwhile
    (a re-export) cannot give the settings of one version and the session of another."""

    path: Path
    data: bytes
    proto: onnx.ModelProto

    @property
    def folder(self) -> Path:
        """Where the file's external data lives, as ONNX defines it: beside the file."""
        return Path(os.path.abspath(self.path)).parent


def read_onnx_file(path: str | Path) -> OnnxFile:
    """Read an ONNX file once, with a message naming it when it is missing, not a file, or corrupt."""
    path = require_file(path, "ONNX file")
    data = read_regular_bytes(path, "ONNX file")
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others; the user needs the file name
        raise GsmlpError(f"{path} is corrupt or not an ONNX model: {exc}") from None
    check_loadable(model, str(path))
    return OnnxFile(path, data, model)


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """The parsed ONNX file (read_onnx_file's proto)."""
    return read_onnx_file(path).proto


class OnnxRuntimeBackend:
    """ONNX Runtime on CPU, or with the CUDA provider first where a CUDA driver is present; GatedSparseMLP
    nodes run on the gsmlp op library where it is built (op="auto"), else on their function body."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path | OnnxFile,
        *,
        use_cuda: bool | None = None,
        threads: int = 0,
        gate_decisions: bool = False,
        op: str = "auto",
        spin: bool = True,
    ) -> None:
        """gate_decisions: also return each GatedSparseMLP node's own block decisions (its BlockMask output,
        on an in-memory copy of the file) for the pinned parity check (gsmlp.validation.gate_decisions).
        spin: False for runs interleaved with other sessions (`gsmlp.runtime.ort_session.session_options`)."""
        self.file = path if isinstance(path, OnnxFile) else read_onnx_file(path)
        self.path, proto = self.file.path, self.file.proto
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.block_masks: list[str] = []
        # The bytes read once, never the path again; their external data is looked up beside the file.
        self.data = self.file.data
        if gate_decisions:
            proto, self.block_masks = expose_block_masks(proto)
            self.data = proto.SerializeToString() if self.block_masks else self.data
        opened = open_session(
            self.data, op=op, threads=threads, use_cuda=use_cuda, label=str(self.path), spin=spin,
            external_data_folder=self.file.folder,
        )  # fmt: skip
        self.session = opened.session
        self.providers = self.session.get_providers()
        # What computed the GatedSparseMLP nodes, for the reports; a dense file has none.
        self.implementation = opened.implementation if gated_nodes(proto) else NO_GATED_NODES

    def run(self, pixel_values: np.ndarray, pixel_mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"pixel_values": pixel_values.astype(np.float32), "pixel_mask": pixel_mask.astype(np.int64)}
        names = [*OUTPUTS, *self.block_masks]
        return dict(zip(names, self.session.run(names, feeds), strict=True))
