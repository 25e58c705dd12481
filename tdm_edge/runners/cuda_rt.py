"""The CUDA runtime through cuda-python (``cuda.bindings.runtime``), every call checked; :class:`CudaPython`, the
TensorRT runner's buffers, stream and CUDA graph on it (:mod:`.cuda_pycuda` is the same on pycuda).

Why cuda-python and not pycuda (docs/tensorrt.md says more): it drives the CUDA *runtime* API on the device's
primary context, the same context torch uses, so the TensorRT runner and the torch-cuda backend can be measured in
one process (pycuda's own context next to torch's is the known source of hangs); it binds CUDA graphs, which pycuda
does not; and it installs as a wheel (pycuda builds from source against a CUDA toolkit). Its calls return
``(error, *values)`` instead of raising, so every call here goes through :func:`check`.
"""

from __future__ import annotations

import ctypes
import inspect
import sys
from types import ModuleType

import numpy as np

from ..errors import DeviceError, UsageError


class CudaError(DeviceError):
    """A CUDA runtime call failed; the message names the call and the CUDA error."""


def cudart() -> ModuleType:
    """``cuda.bindings.runtime`` (cuda-python >= 12.8) or ``cuda.cudart`` (older); one line when neither imports."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise UsageError("cuda-python is not installed: pip install 'tdm-edge[trt]' "
                             "(on a Jetson: pip install cuda-python==<JetPack's CUDA version>)") from None
    return runtime


def check(result, call: str = "CUDA call"):
    """Unpack a cuda-python result ``(error, *values)``: the values (one, a tuple, or ``None``), or :class:`CudaError`.

    Args:
        result: what the cuda-python function returned.
        call: the function's name, for the message.
    """
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        rt = cudart()
        name = rt.cudaGetErrorName(err)[1]
        name = name.decode() if isinstance(name, bytes) else str(err)
        raise CudaError(f"{call} failed: {name} ({int(err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_info(device: int = 0) -> tuple[str, str]:
    """``(name, "major.minor")`` of a CUDA device, or :class:`CudaError` without one."""
    rt = cudart()
    props = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


def driver_matches(rt: ModuleType) -> bool:
    """Whether the driver runs this cuda-python's CUDA major version (12.x bindings need a 12.x or newer driver)."""
    try:
        drv = check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        run = check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    except CudaError:
        return False
    return int(drv) > 0 and int(drv) // 1000 >= int(run) // 1000


def graph_instantiate_takes_flags(rt: ModuleType) -> bool:
    """cuda-python 12+: ``cudaGraphInstantiate(graph, flags)``; 11.x binds ``(graph, pLogBuffer, bufferSize)``."""
    try:
        return len(inspect.signature(rt.cudaGraphInstantiate).parameters) == 2
    except (TypeError, ValueError):  # no signature: tell by the package's version
        version = getattr(sys.modules.get("cuda.bindings"), "__version__", None) or "12"
        return int(str(version).split(".")[0]) >= 12


class CudaPython:
    """Pinned host buffers, device buffers, one stream and an optional CUDA graph through cuda-python.

    Every allocation is recorded and :meth:`close` frees them all in reverse order, checking every call and
    raising the first failure after all ran. ``graphs`` is False on cuda-python 11.x (its ``cudaGraphInstantiate``
    has another signature): the runner then runs without a graph.
    """

    name = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.rt = cudart()
        self.graphs = graph_instantiate_takes_flags(self.rt)
        self._stream = self._graph = self._graph_exec = None
        self._allocations: list[tuple[str, int]] = []  # ("cudaFreeHost" | "cudaFree", pointer), in order

    def device_info(self) -> tuple[str, str]:
        return device_info(self.device)

    def open(self) -> None:
        check(self.rt.cudaSetDevice(self.device), "cudaSetDevice")
        self._stream = check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    @property
    def stream_handle(self) -> int:
        return int(self._stream)

    def host(self, nbytes: int) -> np.ndarray:
        """A pinned host buffer of ``nbytes`` as a uint8 array (valid until :meth:`close`)."""
        ptr = int(check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._allocations.append(("cudaFreeHost", ptr))
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def device_buffer(self, nbytes: int) -> int:
        ptr = int(check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        self._allocations.append(("cudaFree", ptr))
        return ptr

    def copy_in(self, device_ptr: int, host: np.ndarray) -> None:
        """Queue host -> device on the stream (``host`` is a pinned buffer from :meth:`host`)."""
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.rt.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, kind, self._stream),
              "cudaMemcpyAsync")

    def copy_out(self, host: np.ndarray, device_ptr: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(self.rt.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes, kind, self._stream),
              "cudaMemcpyAsync")

    def synchronize(self) -> None:
        check(self.rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def capture(self, enqueue) -> None:
        """Record what ``enqueue()`` queues on the stream as a CUDA graph, replayed by :meth:`launch`."""
        rt = self.rt
        check(rt.cudaStreamBeginCapture(self._stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            self._graph = check(rt.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        self._graph_exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")

    @property
    def captured(self) -> bool:
        return self._graph_exec is not None

    def launch(self) -> None:
        check(self.rt.cudaGraphLaunch(self._graph_exec, self._stream), "cudaGraphLaunch")

    def close(self) -> None:
        rt = self.rt
        frees = []
        if self._graph_exec is not None:
            frees.append(("cudaGraphExecDestroy", rt.cudaGraphExecDestroy, self._graph_exec))
        if self._graph is not None:
            frees.append(("cudaGraphDestroy", rt.cudaGraphDestroy, self._graph))
        for call, ptr in reversed(self._allocations):
            frees.append((call, getattr(rt, call), ptr))
        if self._stream is not None:
            frees.append(("cudaStreamDestroy", rt.cudaStreamDestroy, self._stream))
        self._stream = self._graph = self._graph_exec = None
        self._allocations = []
        failure = None
        for call, func, handle in frees:
            try:
                check(func(handle), call)
            except CudaError as err:
                failure = failure or err
        if failure is not None:
            raise failure
