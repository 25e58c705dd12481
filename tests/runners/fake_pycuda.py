"""FakePyCuda: a stand-in for ``pycuda.driver`` (no GPU, no pycuda here), named as such.

It has the names and argument lists of the real module (checked against pycuda's source by
test_pycuda_conformance.py): ``init``, ``Device`` (``name``, ``compute_capability``, ``retain_primary_context``),
``Context`` (``push``, ``pop``, ``detach``), ``Stream`` (``synchronize``, ``handle``), ``pagelocked_empty`` (an
array whose ``.base`` is the HostAllocation), ``mem_alloc`` (a DeviceAllocation: ``int()`` is its address,
``free``), ``memcpy_htod_async`` / ``memcpy_dtoh_async`` and ``Error``. "Device" memory is host memory; like a GPU,
work queued on a stream runs only at ``Stream.synchronize``, so a missing synchronisation shows as stale outputs.
"""

from __future__ import annotations

import ctypes
import types

import numpy as np


class FakePyCuda(types.ModuleType):
    """``FakePyCuda(fail={"mem_alloc"})`` makes the named functions raise ``Error`` as pycuda does."""

    class Error(Exception):
        pass

    def __init__(self, fail=(), name: str = "FakeGPU Orin", cc=(8, 7)) -> None:
        super().__init__("pycuda.driver")
        self.fail = set(fail)
        self.calls: list[str] = []
        self.live: dict[int, ctypes.Array] = {}
        self.queue: list = []
        self.contexts = 0  # primary-context retains minus releases
        self.pushed = 0
        fake = self

        class Device:
            def __init__(self, number: int) -> None:
                fake._log("Device")
                self.number = number

            def name(self) -> str:
                return name

            def compute_capability(self) -> tuple[int, int]:
                return cc

            def retain_primary_context(self):
                fake._log("retain_primary_context")
                fake.contexts += 1
                return Context()

        class Context:
            def push(self) -> None:
                fake._log("push")
                fake.pushed += 1

            @staticmethod
            def pop() -> None:
                fake._log("pop")
                fake.pushed -= 1

            def detach(self) -> None:
                fake._log("detach")
                fake.contexts -= 1

        class Stream:
            def __init__(self, flags: int = 0) -> None:
                fake._log("Stream")
                self.handle = 0x5EED

            def synchronize(self) -> None:
                fake._log("synchronize")
                queued, fake.queue = fake.queue, []
                for op in queued:
                    op()

        class HostAllocation:
            def __init__(self, shape: tuple, dtype: np.dtype) -> None:
                self.buffer = (ctypes.c_uint8 * max(1, int(np.prod(shape)) * dtype.itemsize))()
                self.ptr = ctypes.addressof(self.buffer)
                fake.live[self.ptr] = self.buffer
                self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "data": (self.ptr, False),
                                            "version": 3}

            def free(self) -> None:
                fake._log("HostAllocation.free")
                del fake.live[self.ptr]

        class DeviceAllocation:
            def __init__(self, nbytes: int) -> None:
                self.buffer = (ctypes.c_uint8 * nbytes)()
                self.ptr = ctypes.addressof(self.buffer)
                fake.live[self.ptr] = self.buffer

            def __int__(self) -> int:
                return self.ptr

            def free(self) -> None:
                fake._log("DeviceAllocation.free")
                del fake.live[self.ptr]

        self.Device, self.Context, self.Stream = Device, Context, Stream
        self.HostAllocation, self.DeviceAllocation = HostAllocation, DeviceAllocation

    def _log(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.Error(f"{name} failed: out of memory")

    def enqueue(self, stream_handle, op) -> None:  # what FakeTensorRT's execute_async_v3 queues
        self.queue.append(op)

    # -- module-level functions of pycuda.driver ---------------------------------------------------------------------
    def init(self, flags: int = 0) -> None:
        self._log("init")

    def pagelocked_empty(self, shape, dtype, order="C", mem_flags=0) -> np.ndarray:
        self._log("pagelocked_empty")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        array = np.asarray(self.HostAllocation(shape, np.dtype(dtype)))  # .base: the allocation, as in pycuda
        assert isinstance(array.base, self.HostAllocation)
        return array

    def mem_alloc(self, bytes):  # noqa: A002 (pycuda's parameter name)
        self._log("mem_alloc")
        return self.DeviceAllocation(bytes)

    def memcpy_htod_async(self, dest, src, stream=None) -> None:
        self._log("memcpy_htod_async")
        src = np.ascontiguousarray(src)
        self.queue.append(lambda: ctypes.memmove(int(dest), src.ctypes.data, src.nbytes))

    def memcpy_dtoh_async(self, dest, src, stream=None) -> None:
        self._log("memcpy_dtoh_async")
        self.queue.append(lambda: ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes))
