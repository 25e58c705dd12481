"""Run a TensorRT engine through the shared :class:`~tdm_edge.runners.base.Runner` interface.

::

    with TensorRTRunner("deit_s_bat07.engine", cuda_graph=True) as runner:
        logits = runner.infer({"input": batch})["logits"]

Activation checks the engine's sidecar against this TensorRT and GPU *before* deserialising (one line if they
differ), loads the plugin libraries the engine was built with (given, or found from the sidecar beside the engine
or on ``$TDM_EDGE_PLUGIN_PATH``), sets the engine's DLA core on the runtime, deserialises, then allocates every
buffer once (pinned host + device, one per I/O tensor), binds the device buffers by tensor name
(``set_tensor_address``) and creates one stream. Inference copies the feed into the pinned buffers and queues
copy-in, ``execute_async_v3``, copy-out on that stream (or replays them as one captured CUDA graph), then
synchronises the stream before reading the outputs. The CUDA side is cuda-python or pycuda (``cuda=``:
:mod:`tdm_edge.runners.cuda_pycuda`); every CUDA call is checked; deactivation frees everything, in reverse order.
``tensorrt`` and the CUDA binding are imported at activation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import UsageError
from .base import Runner, TensorMeta
from .cuda_pycuda import open_cuda
from .cuda_rt import CudaError
from .trt_env import (check_compatible, check_plugins, import_tensorrt, load_plugins, numpy_dtype,
                      plugins_from_sidecar, read_sidecar)


@dataclass
class _Binding:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    raw: np.ndarray  # the whole pinned host buffer (uint8)
    host: np.ndarray  # a typed view of it
    device_ptr: int


class TensorRTRunner(Runner):
    """Inference with a serialized TensorRT engine (TensorRT 8.5 to 11.x: the tensor-name API).

    Args:
        engine_path: the ``.engine`` written by ``tdm-edge build`` (its sidecar ``.engine.json`` beside it).
        cuda_graph: capture copy-in, inference and copy-out once and replay the graph on every ``infer`` (where the
            binding can: cuda-python 12 or newer; otherwise a one-line note and no graph).
        check_sidecar: compare the sidecar's TensorRT version, compute capability and plugin libraries with this
            machine's first.
        plugins: plugin libraries the engine was built with (``tdm-edge build --plugins``), loaded before
            deserialising. Default: the ones its sidecar lists, found beside the engine or on
            ``$TDM_EDGE_PLUGIN_PATH``.
        device: the CUDA device.
        cuda: "auto" (cuda-python when it imports and matches the driver, else pycuda), "cuda-python" or "pycuda".
        dla_core: the DLA core to run on (default: the sidecar's, the core the engine was built for).
        trt: the ``tensorrt`` module (default: imported at activation).
    """

    def __init__(self, engine_path: str | os.PathLike, *, cuda_graph: bool = False, check_sidecar: bool = True,
                 plugins: Sequence[str | os.PathLike] = (), device: int = 0, cuda: str = "auto",
                 dla_core: int | None = None, trt: ModuleType | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.engine_path = Path(engine_path)
        self.cuda_graph = cuda_graph
        self.check_sidecar = check_sidecar
        self.plugins = list(plugins)
        self.device = device
        self.cuda_choice = cuda
        self.dla_core = dla_core
        self._trt = trt
        self._reset()

    def _reset(self) -> None:
        self.runtime = self.engine = self.context = self._logger = self.cuda = None
        self._bindings: list[_Binding] = []

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        if not self.engine_path.is_file():
            raise UsageError(f"engine not found: {self.engine_path}")
        trt = self._trt or import_tensorrt()
        cuda = open_cuda(self.cuda_choice, self.device)
        record = read_sidecar(self.engine_path) if self.check_sidecar else None
        if record is not None:
            check_compatible(record, trt.__version__, *cuda.device_info())
        plugins = self.plugins or (plugins_from_sidecar(record, self.engine_path) if record is not None else [])
        self._logger = trt.Logger(trt.Logger.WARNING)  # kept: TensorRT holds on to it
        loaded = load_plugins(trt, self._logger, plugins) if plugins else {}
        if record is not None:
            check_plugins(record, loaded)
        dla_core = self.dla_core if self.dla_core is not None else (record or {}).get("dla_core")
        self.cuda = cuda
        try:
            cuda.open()
            self._load(trt, dla_core)
        except BaseException:
            self.deactivate_impl()
            raise

    def _load(self, trt: ModuleType, dla_core: int | None) -> None:
        self.runtime = trt.Runtime(self._logger)
        if dla_core is not None:  # before deserialising: an engine built for DLA core 1 would run on core 0
            self.runtime.DLA_core = int(dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise UsageError(f"TensorRT cannot deserialise {self.engine_path} (not an engine, or built elsewhere)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise CudaError("TensorRT could not create an execution context (out of device memory?)")
        for i in range(self.engine.num_io_tensors):
            self._allocate(trt, self.engine.get_tensor_name(i))
        if self.cuda_graph and not self.cuda.graphs:
            print(f"tdm-edge: CUDA graphs need cuda-python 12 or newer; running {self.engine_path.name} without "
                  f"one ({self.cuda.name})", file=sys.stderr)
        elif self.cuda_graph:
            self._enqueue()  # TensorRT's first enqueue may allocate or update state: never inside a capture
            self.cuda.synchronize()
            self.cuda.capture(self._enqueue)

    def _allocate(self, trt: ModuleType, name: str) -> None:
        """Pinned host and device buffers for one I/O tensor, bound to the context by name."""
        engine = self.engine
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise UsageError(f"{self.engine_path}: tensor {name!r} has a dynamic shape {list(shape)}; "
                             "build the engine from an ONNX with a static batch (tdm-edge export --batch N)")
        dtype = numpy_dtype(engine.get_tensor_dtype(name), f"tensor {name!r}")
        size = int(np.prod(shape)) * dtype.itemsize
        raw = self.cuda.host(max(1, size))  # the session frees it, whatever fails next
        binding = _Binding(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, dtype, shape, raw,
                           raw[:size].view(dtype).reshape(shape), 0)
        self._bindings.append(binding)
        binding.device_ptr = self.cuda.device_buffer(max(1, size))
        if not self.context.set_tensor_address(name, binding.device_ptr):
            raise CudaError(f"set_tensor_address({name!r}) failed")

    def _enqueue(self) -> None:
        """Queue copy-in, inference, copy-out on the stream (nothing is done until the stream is synchronised)."""
        for b in self._bindings:
            if b.is_input:
                self.cuda.copy_in(b.device_ptr, b.raw)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise CudaError("execute_async_v3 failed (TensorRT's message is above)")
        for b in self._bindings:
            if not b.is_input:
                self.cuda.copy_out(b.raw, b.device_ptr)

    def deactivate_impl(self) -> None:
        """Drop the host views and TensorRT's objects, then free the memory (the session: reverse order, all checked)."""
        cuda = self.cuda
        self._bindings = []  # drop the host views before their memory goes
        self.context = self.engine = self.runtime = None  # TensorRT objects go before the memory they use
        self._reset()
        if cuda is not None:
            cuda.close()

    # -- inference -------------------------------------------------------------------------------------------------
    def input_metadata_impl(self) -> Sequence[TensorMeta]:
        return [TensorMeta(b.name, b.dtype, b.shape) for b in self._bindings if b.is_input]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for b in self._bindings:
            if b.is_input:
                np.copyto(b.host, feed[b.name])
        if self.cuda.captured:
            self.cuda.launch()
        else:
            self._enqueue()
        self.cuda.synchronize()  # the copies out are asynchronous: without this the outputs are the last frame's
        return {b.name: b.host.copy() for b in self._bindings if not b.is_input}
