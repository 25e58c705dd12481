"""Run a TensorRT engine through the shared :class:`~tdm_edge.runners.base.Runner` interface.

::

    with TensorRTRunner("deit_s_bat07.engine", cuda_graph=True) as runner:
        logits = runner.infer({"input": batch})["logits"]

Activation checks the engine's sidecar against this TensorRT and GPU *before* deserialising (one line if they
differ), then allocates every buffer once (pinned host + device, one per I/O tensor), binds the device buffers by
tensor name (``set_tensor_address``) and creates one stream. Inference copies the feed into the pinned buffers and
runs copy-in, ``execute_async_v3``, copy-out on that stream, or replays them as one captured CUDA graph. Every
CUDA call is checked (:mod:`tdm_edge.runners.cuda_rt`); deactivation frees everything, in reverse order.
``tensorrt`` and cuda-python are imported at activation.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import UsageError
from .base import Runner, TensorMeta
from .cuda_rt import CudaError, check, cudart, device_info
from .trt_env import check_compatible, check_plugins, import_tensorrt, load_plugins, read_sidecar


@dataclass
class _Binding:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    host: np.ndarray  # a view of the pinned host buffer
    host_ptr: int
    device_ptr: int


class TensorRTRunner(Runner):
    """Inference with a serialized TensorRT engine (TensorRT 8.5 to 11.x: the tensor-name API).

    Args:
        engine_path: the ``.engine`` written by ``tdm-edge build`` (its sidecar ``.engine.json`` beside it).
        cuda_graph: capture copy-in, inference and copy-out once and replay the graph on every ``infer``.
        check_sidecar: compare the sidecar's TensorRT version, compute capability and plugin libraries with this
            machine's first.
        plugins: plugin libraries the engine was built with (``tdm-edge build --plugins``), loaded before
            deserialising.
        device: the CUDA device.
        trt: the ``tensorrt`` module (default: imported at activation).
    """

    def __init__(self, engine_path: str | os.PathLike, *, cuda_graph: bool = False, check_sidecar: bool = True,
                 plugins: Sequence[str | os.PathLike] = (), device: int = 0, trt: ModuleType | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.engine_path = Path(engine_path)
        self.cuda_graph = cuda_graph
        self.check_sidecar = check_sidecar
        self.plugins = list(plugins)
        self.device = device
        self._trt = trt
        self._reset()

    def _reset(self) -> None:
        self.runtime = self.engine = self.context = self._logger = None
        self._stream = self._graph = self._graph_exec = None
        self._bindings: list[_Binding] = []

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        if not self.engine_path.is_file():
            raise UsageError(f"engine not found: {self.engine_path}")
        trt = self._trt or import_tensorrt()
        rt = cudart()
        record = read_sidecar(self.engine_path) if self.check_sidecar else None
        if record is not None:
            check_compatible(record, trt.__version__, *device_info(self.device))
        self._logger = trt.Logger(trt.Logger.WARNING)  # kept: TensorRT holds on to it
        loaded = load_plugins(trt, self._logger, self.plugins) if self.plugins else {}
        if record is not None:
            check_plugins(record, loaded)
        check(rt.cudaSetDevice(self.device), "cudaSetDevice")
        try:
            self._load(trt, rt)
        except BaseException:
            self.deactivate_impl()
            raise

    def _load(self, trt: ModuleType, rt: ModuleType) -> None:
        self.runtime = trt.Runtime(self._logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise UsageError(f"TensorRT cannot deserialise {self.engine_path} (not an engine, or built elsewhere)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise CudaError("TensorRT could not create an execution context (out of device memory?)")
        self._stream = check(rt.cudaStreamCreate(), "cudaStreamCreate")
        for i in range(self.engine.num_io_tensors):
            self._allocate(trt, rt, self.engine.get_tensor_name(i))
        if self.cuda_graph:
            self._enqueue(rt)  # TensorRT's first enqueue may allocate or update state: never inside a capture
            check(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
            mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            check(rt.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
            try:
                self._enqueue(rt)
            finally:
                self._graph = check(rt.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
            self._graph_exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")

    def _allocate(self, trt: ModuleType, rt: ModuleType, name: str) -> None:
        """Pinned host and device buffers for one I/O tensor, bound to the context by name."""
        engine = self.engine
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise UsageError(f"{self.engine_path}: tensor {name!r} has a dynamic shape {list(shape)}; "
                             "build the engine from an ONNX with a static batch (tdm-edge export --batch N)")
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        host_ptr = check(rt.cudaMallocHost(nbytes), "cudaMallocHost")
        binding = _Binding(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, dtype, shape,
                           np.ctypeslib.as_array((ctypes.c_byte * nbytes).from_address(int(host_ptr)))
                           [:int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape), int(host_ptr), 0)
        self._bindings.append(binding)  # from here on deactivate_impl frees it, whatever fails next
        binding.device_ptr = int(check(rt.cudaMalloc(nbytes), "cudaMalloc"))
        if not self.context.set_tensor_address(name, binding.device_ptr):
            raise CudaError(f"set_tensor_address({name!r}) failed")

    def _enqueue(self, rt: ModuleType) -> None:
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for b in self._bindings:
            if b.is_input:
                check(rt.cudaMemcpyAsync(b.device_ptr, b.host_ptr, b.host.nbytes, h2d, self._stream),
                      "cudaMemcpyAsync")
        if not self.context.execute_async_v3(int(self._stream)):
            raise CudaError("execute_async_v3 failed (TensorRT's message is above)")
        for b in self._bindings:
            if not b.is_input:
                check(rt.cudaMemcpyAsync(b.host_ptr, b.device_ptr, b.host.nbytes, d2h, self._stream),
                      "cudaMemcpyAsync")

    def deactivate_impl(self) -> None:
        """Free in reverse order of allocation; every call is checked, the first failure raised after all ran."""
        rt = cudart()
        frees = []
        if self._graph_exec is not None:
            frees.append(("cudaGraphExecDestroy", rt.cudaGraphExecDestroy, self._graph_exec))
        if self._graph is not None:
            frees.append(("cudaGraphDestroy", rt.cudaGraphDestroy, self._graph))
        for b in reversed(self._bindings):
            if b.device_ptr:
                frees.append(("cudaFree", rt.cudaFree, b.device_ptr))
            frees.append(("cudaFreeHost", rt.cudaFreeHost, b.host_ptr))
        if self._stream is not None:
            frees.append(("cudaStreamDestroy", rt.cudaStreamDestroy, self._stream))
        self._bindings = []  # drop the host views before their memory goes
        self.context = self.engine = self.runtime = None  # TensorRT objects go before the memory they use
        failure = None
        for call, func, handle in frees:
            try:
                check(func(handle), call)
            except CudaError as err:
                failure = failure or err
        self._reset()
        if failure is not None:
            raise failure

    # -- inference -------------------------------------------------------------------------------------------------
    def input_metadata_impl(self) -> Sequence[TensorMeta]:
        return [TensorMeta(b.name, b.dtype, b.shape) for b in self._bindings if b.is_input]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rt = cudart()
        for b in self._bindings:
            if b.is_input:
                np.copyto(b.host, feed[b.name])
        if self._graph_exec is not None:
            check(rt.cudaGraphLaunch(self._graph_exec, self._stream), "cudaGraphLaunch")
        else:
            self._enqueue(rt)
        check(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {b.name: b.host.copy() for b in self._bindings if not b.is_input}
