"""Run a gsmlp TensorRT engine from Python with tensorrt + pycuda: no torch at deploy time.

    runner = TensorRTRunner("runs/gated.engine", plugin_lib="build/.../libgsmlp_trt_plugin.so")
    outputs = runner.run(pixel_values, pixel_mask)   # {"logits": ..., "pred_boxes": ..., ...}

This is the `tensorrt` backend of `gsmlp validate`: same inputs and outputs as the other backends, as numpy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gsmlp.errors import GsmlpError
from gsmlp.runtime.engine_metadata import check_compatible, read_metadata
from gsmlp.runtime.trt_common import (
    PLUGIN_ENV,
    find_plugin_library,
    gpu_description,
    import_pycuda,
    import_tensorrt,
    load_plugin_library,
    make_logger,
)

REQUIRED_OUTPUTS = ("logits", "pred_boxes")


class TensorRTRunner:
    """One engine, one execution context, one CUDA stream; device buffers are reused across calls."""

    name = "tensorrt"  # the backend's name in `gsmlp validate` reports

    def __init__(
        self, engine_path: str | os.PathLike[str], plugin_lib: str | os.PathLike[str] | None = None
    ) -> None:
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise GsmlpError(f"the engine {self.engine_path} does not exist (build it with `gsmlp build`)")
        self.metadata = read_metadata(self.engine_path)
        trt = import_tensorrt()
        self._cuda = import_pycuda()
        gpu = gpu_description()
        if self.metadata is not None:
            # Before deserializing: TensorRT's own failure here is an opaque serialization assertion.
            check_compatible(
                self.engine_path, self.metadata, trt.__version__, gpu["compute_capability"], gpu["name"]
            )
        if plugin_lib is None and self.metadata and (self.metadata.get("plugin") or {}).get("library"):
            # The library the engine was built with, when it is still there and nothing else was named.
            recorded = Path(self.metadata["plugin"]["library"])
            plugin_lib = recorded if recorded.is_file() and not os.environ.get(PLUGIN_ENV) else None
        if self._needs_plugin() or plugin_lib is not None:
            load_plugin_library(trt, find_plugin_library(plugin_lib))
        self._trt = trt
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            checked = (
                ""
                if self.metadata is not None
                else " (it has no .json beside it, so its TensorRT version and GPU were not checked)"
            )
            raise GsmlpError(
                f"TensorRT could not deserialize {self.engine_path}{checked}; its errors are printed above"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise GsmlpError(f"TensorRT could not create an execution context for {self.engine_path}")
        self._stream = self._cuda.Stream()
        self._buffers: dict[str, tuple[Any, int]] = {}
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_names.append(name)
            else:
                self.output_names.append(name)

    def _needs_plugin(self) -> bool:
        # Without metadata the engine may or may not hold plugin layers: load the library when one is found.
        if self.metadata is None:
            try:
                find_plugin_library(None)
            except GsmlpError:
                return False
            return True
        return self.metadata.get("plugin") is not None

    def _device_buffer(self, name: str, nbytes: int) -> Any:
        buffer, size = self._buffers.get(name, (None, 0))
        if buffer is None or size < nbytes:
            buffer = self._cuda.mem_alloc(max(nbytes, 1))
            self._buffers[name] = (buffer, max(nbytes, 1))
        return buffer

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the engine on named inputs; returns every output by name."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise GsmlpError(f"{self.engine_path} needs inputs {self.input_names}; missing {missing}")
        for name in self.input_names:
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            array = np.ascontiguousarray(feeds[name], dtype=dtype)
            if not self.context.set_input_shape(name, array.shape):
                raise GsmlpError(
                    f"input {name} of shape {list(array.shape)} is outside the engine's profile "
                    f"{self._profile_text(name)}"
                )
            device = self._device_buffer(name, array.nbytes)
            # Synchronous copies: numpy memory is pageable, so an "async" copy would not overlap anyway.
            self._cuda.memcpy_htod(device, array)
            self.context.set_tensor_address(name, int(device))
        results = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            results[name] = np.empty(shape, dtype=dtype)
            self.context.set_tensor_address(name, int(self._device_buffer(name, results[name].nbytes)))
        if not self.context.execute_async_v3(self._stream.handle):
            raise GsmlpError(f"TensorRT failed to run {self.engine_path}; its errors are printed above")
        self._stream.synchronize()
        for name, array in results.items():
            self._cuda.memcpy_dtoh(array, self._buffers[name][0])
        return results

    def run(self, pixel_values: np.ndarray, pixel_mask: np.ndarray) -> dict[str, np.ndarray]:
        """The backend interface: a preprocessed batch in, at least "logits" and "pred_boxes" out (fp32)."""
        feeds: dict[str, np.ndarray] = {"pixel_values": pixel_values}
        if "pixel_mask" in self.input_names:
            feeds["pixel_mask"] = pixel_mask
        outputs = self.infer(feeds)
        absent = [n for n in REQUIRED_OUTPUTS if n not in outputs]
        if absent:
            raise GsmlpError(
                f"{self.engine_path} has outputs {self.output_names}, not {list(REQUIRED_OUTPUTS)}"
            )
        # Floating outputs as fp32 for comparison; block masks (engines built with --block-masks) stay bool.
        return {
            name: value.astype(np.float32, copy=False) if value.dtype.kind == "f" else value
            for name, value in outputs.items()
        }

    @property
    def implementation(self) -> str | None:
        """What computes the GatedSparseMLP layers, from the engine's JSON (None without one)."""
        if self.metadata is None:
            return None
        return "gsmlp TensorRT plugin" if self.metadata.get("plugin") else "inlined function body"

    def _profile_text(self, name: str) -> str:
        try:
            lo, opt, hi = self.engine.get_tensor_profile_shape(name, 0)
            return f"min {list(lo)}, opt {list(opt)}, max {list(hi)}"
        except Exception:  # a static engine has no profile
            return f"fixed {list(self.engine.get_tensor_shape(name))}"

    def close(self) -> None:
        """Free the device buffers and the TensorRT objects now rather than at garbage collection."""
        for buffer, _ in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        self.context = None
        self.engine = None

    def __enter__(self) -> TensorRTRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
