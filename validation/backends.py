"""Backends: one interface, `run(pixel_values, pixel_mask) -> {"logits", "pred_boxes"}`, numpy in and out.

Every backend (PyTorch, ONNX Runtime, TensorRT in gsmlp.runtime) takes the same preprocessed arrays, so
parity compares computations, never preprocessing.
"""

from __future__ import annotations

import ctypes.util
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import torch
from torch import nn

from gsmlp.errors import GsmlpError
from gsmlp.exporter.graph import check_loadable
from gsmlp.paths import require_file
from gsmlp.validation.gate_decisions import GATE_DECISIONS_PREFIX, gate_probes, with_gate_outputs

OUTPUTS = ("logits", "pred_boxes")


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


def _cuda_driver_present() -> bool:
    # onnxruntime-gpu lists the CUDA provider even with no GPU, then falls back noisily; ask the driver.
    return ctypes.util.find_library("cuda") is not None


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file with a message naming it when it is missing, a folder, or corrupt."""
    path = require_file(path, "ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others; the user needs the file name
        raise GsmlpError(f"{path} is corrupt or not an ONNX model: {exc}") from None
    check_loadable(model, str(path))
    return model


class OnnxRuntimeBackend:
    """ONNX Runtime on CPU, or with the CUDA provider first where a CUDA driver is present."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        use_cuda: bool | None = None,
        threads: int = 0,
        gate_decisions: bool = False,
    ) -> None:
        """gate_decisions: also return each GatedSparseMLP node's block decisions, as
        `gate_decisions:<module path>`, for the pinned parity check (gsmlp.validation.gate_decisions)."""
        self.path = Path(path)
        proto = read_onnx(self.path)
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.gate_inputs: dict[str, str] = {}  # X tensor name -> module path
        self.probes: dict = {}  # module path -> session of its gate probe
        source: str | bytes = str(self.path)
        if gate_decisions:
            probes = gate_probes(proto)
            proto, self.gate_inputs = with_gate_outputs(proto)
            source = proto.SerializeToString() if self.gate_inputs else source
            self.probes = {
                path: self._session(probe.SerializeToString(), use_cuda, threads)
                for path, probe in probes.items()
            }
        self.session = self._session(source, use_cuda, threads)
        self.providers = self.session.get_providers()

    def _session(self, source: str | bytes, use_cuda: bool | None, threads: int):
        import onnxruntime as ort

        use_cuda = _cuda_driver_present() if use_cuda is None else use_cuda
        providers = ["CPUExecutionProvider"]
        if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # fp16 graphs make ORT warn about every node it cannot pre-fold
        try:
            return ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:
            raise GsmlpError(f"ONNX Runtime cannot load {self.path}: {exc}") from None

    def run(self, pixel_values: np.ndarray, pixel_mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"pixel_values": pixel_values.astype(np.float32), "pixel_mask": pixel_mask.astype(np.int64)}
        values = self.session.run([*OUTPUTS, *self.gate_inputs], feeds)
        outputs = dict(zip(OUTPUTS, values, strict=False))
        for path, x in zip(self.gate_inputs.values(), values[len(OUTPUTS) :], strict=True):
            # The gate probe decides exactly as the inlined function body did: same kernels, same X.
            (decided,) = self.probes[path].run(["block_on"], {"X": x})
            outputs[GATE_DECISIONS_PREFIX + path] = decided
        return outputs
