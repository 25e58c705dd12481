"""FakeCudart: a stand-in for cuda-python's ``cuda.bindings.runtime`` (no GPU here), named as such.

"Device" memory is host memory, copies are ``memmove``s, and like a real GPU the stream is asynchronous: queued
work (copies, FakeTensorRT's ``compute``, graph launches) runs only when the stream is synchronised, so a runner
that reads its outputs without ``cudaStreamSynchronize`` reads stale memory here as it would on a GPU. A stream
capture records the operations into a graph that ``cudaGraphLaunch`` queues. A runner's data path (buffers,
copies, bindings by address, graph capture, frees) is exercised for real; only the kernels are not.
"""

from __future__ import annotations

import ctypes
import enum
import types

SUCCESS = 0


class FakeCudart(types.ModuleType):
    """``FakeCudart(fail={"cudaMalloc": 2})`` makes the named call return that CUDA error code."""

    cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", [("cudaMemcpyHostToDevice", 1), ("cudaMemcpyDeviceToHost", 2)])
    cudaStreamCaptureMode = enum.IntEnum("cudaStreamCaptureMode", [("cudaStreamCaptureModeGlobal", 0),
                                                                   ("cudaStreamCaptureModeThreadLocal", 1)])
    ERRORS = {2: b"cudaErrorMemoryAllocation", 100: b"cudaErrorNoDevice"}

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        super().__init__("cudart")
        self.fail = dict(fail or {})
        self.calls: list[str] = []
        self.live: dict[int, ctypes.Array] = {}  # address -> buffer, host and "device"
        self.capturing: list | None = None
        self.queue: list = []  # work queued on the stream, run at cudaStreamSynchronize
        self.streams = 0
        self.driver_version, self.runtime_version = 12060, 12060

    def _call(self, name: str, *values):
        self.calls.append(name)
        if name in self.fail:
            return (self.fail[name],) + (None,) * len(values)
        return (SUCCESS, *values)

    def _alloc(self, name: str, nbytes: int):
        if name in self.fail:
            return self._call(name, None)
        buf = (ctypes.c_byte * nbytes)()
        self.live[ctypes.addressof(buf)] = buf
        return self._call(name, ctypes.addressof(buf))

    def enqueue(self, stream, op) -> None:
        if self.capturing is not None:
            self.capturing.append(op)
        else:
            self.queue.append(op)

    # -- the cuda-python calls the runner makes ----------------------------------------------------------------------
    def cudaGetErrorName(self, err):
        return SUCCESS, self.ERRORS.get(int(err), b"cudaErrorUnknown")

    def cudaGetDeviceProperties(self, device: int):
        return self._call("cudaGetDeviceProperties", types.SimpleNamespace(name=b"FakeGPU Orin\0\0", major=8, minor=7))

    def cudaSetDevice(self, device: int):
        return self._call("cudaSetDevice")

    def cudaStreamCreate(self):
        self.streams += 1
        return self._call("cudaStreamCreate", 7)

    def cudaStreamDestroy(self, stream):
        self.streams -= 1
        return self._call("cudaStreamDestroy")

    def cudaStreamSynchronize(self, stream):
        queued, self.queue = self.queue, []
        for op in queued:
            op()
        return self._call("cudaStreamSynchronize")

    def cudaDriverGetVersion(self):
        return self._call("cudaDriverGetVersion", self.driver_version)

    def cudaRuntimeGetVersion(self):
        return self._call("cudaRuntimeGetVersion", self.runtime_version)

    def cudaMallocHost(self, nbytes: int):
        return self._alloc("cudaMallocHost", nbytes)

    def cudaMalloc(self, nbytes: int):
        return self._alloc("cudaMalloc", nbytes)

    def cudaFree(self, ptr: int):
        del self.live[ptr]
        return self._call("cudaFree")

    def cudaFreeHost(self, ptr: int):
        del self.live[ptr]
        return self._call("cudaFreeHost")

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind, stream):
        self.enqueue(stream, lambda: ctypes.memmove(dst, src, nbytes))
        return self._call("cudaMemcpyAsync")

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing = []
        return self._call("cudaStreamBeginCapture")

    def cudaStreamEndCapture(self, stream):
        graph, self.capturing = self.capturing, None
        return self._call("cudaStreamEndCapture", graph)

    def cudaGraphInstantiate(self, graph, flags: int):
        return self._call("cudaGraphInstantiate", list(graph))

    def cudaGraphLaunch(self, graph_exec, stream):
        self.queue.extend(graph_exec)  # a launch is asynchronous too
        return self._call("cudaGraphLaunch")

    def cudaGraphExecDestroy(self, graph_exec):
        return self._call("cudaGraphExecDestroy")

    def cudaGraphDestroy(self, graph):
        return self._call("cudaGraphDestroy")


class FakeCudart11(FakeCudart):
    """cuda-python 11.x: ``cudaGraphInstantiate(graph, pLogBuffer, bufferSize)`` (returns an error node too)."""

    def cudaGraphInstantiate(self, graph, pLogBuffer, bufferSize):  # noqa: N803 (the binding's names)
        return self._call("cudaGraphInstantiate", list(graph), None)
