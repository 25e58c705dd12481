"""The TensorRT runner's buffers and stream through pycuda (``--cuda pycuda``), and the choice between the bindings.

pycuda drives the CUDA *driver* API; here it uses the device's primary context (``retain_primary_context``, the
context the CUDA runtime and TensorRT use), never a context of its own, so TensorRT and pycuda share memory and
streams. pycuda binds no stream capture of runtime work, so CUDA graphs are off with it (``graphs = False``).
Every pycuda name used here is checked against pycuda's own source (tests/runners/test_pycuda_conformance.py).

``--cuda auto`` (:func:`open_cuda`): cuda-python when it imports and the driver runs its CUDA major version,
else pycuda; one line naming both reasons when neither works.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import UsageError
from . import cuda_rt
from .cuda_rt import CudaError, CudaPython, driver_matches

CUDA_CHOICES = ("auto", "cuda-python", "pycuda")


def import_pycuda() -> ModuleType:
    """``pycuda.driver``, or one line saying how to get it."""
    try:
        import pycuda.driver as driver
    except ImportError:
        raise UsageError("pycuda is not installed: pip install pycuda (it builds against the CUDA toolkit; on a "
                         "Jetson, with /usr/local/cuda/bin on PATH)") from None
    return driver


class PyCuda:
    """The same interface as :class:`~tdm_edge.runners.cuda_rt.CudaPython`, on pycuda."""

    name = "pycuda"
    graphs = False

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.cuda = import_pycuda()
        self._context = self._stream = None
        self._allocations: list = []  # pycuda allocation objects (HostAllocation, DeviceAllocation), in order

    def _call(self, what: str, func, *args):
        try:
            return func(*args)
        except self.cuda.Error as err:
            raise CudaError(f"{what} failed: {' '.join(str(err).split())}") from None

    def device_info(self) -> tuple[str, str]:
        cuda = self.cuda
        self._call("cuInit", cuda.init)
        dev = self._call("cuDeviceGet", cuda.Device, self.device)
        major, minor = dev.compute_capability()
        return dev.name(), f"{major}.{minor}"

    def open(self) -> None:
        cuda = self.cuda
        self._call("cuInit", cuda.init)
        context = self._call("cuDevicePrimaryCtxRetain", cuda.Device(self.device).retain_primary_context)
        self._call("cuCtxPushCurrent", context.push)
        self._context = context
        self._stream = self._call("cuStreamCreate", cuda.Stream)

    @property
    def stream_handle(self) -> int:
        return int(self._stream.handle)

    def host(self, nbytes: int) -> np.ndarray:
        array = self._call("cuMemHostAlloc", self.cuda.pagelocked_empty, nbytes, np.uint8)
        self._allocations.append(array.base)  # the HostAllocation the array views
        return array

    def device_buffer(self, nbytes: int) -> int:
        allocation = self._call("cuMemAlloc", self.cuda.mem_alloc, nbytes)
        self._allocations.append(allocation)
        return int(allocation)

    def copy_in(self, device_ptr: int, host: np.ndarray) -> None:
        self._call("cuMemcpyHtoDAsync", self.cuda.memcpy_htod_async, device_ptr, host, self._stream)

    def copy_out(self, host: np.ndarray, device_ptr: int) -> None:
        self._call("cuMemcpyDtoHAsync", self.cuda.memcpy_dtoh_async, host, device_ptr, self._stream)

    def synchronize(self) -> None:
        self._call("cuStreamSynchronize", self._stream.synchronize)

    captured = False

    def capture(self, enqueue) -> None:  # pragma: no cover - graphs is False: the runner never calls it
        raise CudaError("CUDA graphs need cuda-python 12 or newer (--cuda cuda-python)")

    def launch(self) -> None:  # pragma: no cover
        raise CudaError("no CUDA graph")

    def close(self) -> None:
        """Free in reverse order, then release the primary context; the first failure is raised after all ran."""
        steps = [("cuMemFree", a.free) for a in reversed(self._allocations)]
        self._allocations = []
        self._stream = None
        if self._context is not None:
            steps += [("cuCtxPopCurrent", self.cuda.Context.pop), ("cuDevicePrimaryCtxRelease", self._context.detach)]
        self._context = None
        failure = None
        for what, func in steps:
            try:
                self._call(what, func)
            except CudaError as err:
                failure = failure or err
        if failure is not None:
            raise failure


def open_cuda(choice: str = "auto", device: int = 0):
    """A :class:`CudaPython` or :class:`PyCuda` for ``--cuda auto|cuda-python|pycuda``; one line when impossible."""
    if choice not in CUDA_CHOICES:
        raise UsageError(f"unknown --cuda {choice!r}; one of {', '.join(CUDA_CHOICES)}")
    if choice == "cuda-python":
        return CudaPython(device)
    if choice == "pycuda":
        return PyCuda(device)
    try:
        rt = cuda_rt.cudart()
        if driver_matches(rt):
            return CudaPython(device)
        why = "cuda-python's CUDA is newer than the driver (or no driver)"
    except UsageError as err:
        why = str(err)
    try:
        return PyCuda(device)
    except UsageError as err:
        raise UsageError(f"no usable CUDA binding: {why}; {err}") from None
