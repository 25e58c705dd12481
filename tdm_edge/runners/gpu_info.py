"""The GPU's name and compute capability from the CUDA driver itself (``libcuda``, through ctypes): no CUDA binding.

``tdm-edge build`` records the GPU in the engine's sidecar and names cached engines after it; neither should need
cuda-python or pycuda (TensorRT does not). ``libcuda.so.1`` is the driver every CUDA program loads, present on any
machine that can build an engine (a Jetson included). Without it, or on any failure, the answer is ``"unknown"``.
"""

from __future__ import annotations

import ctypes

from .trt_env import UNKNOWN

_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR (cuda.h)


def _driver():
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def gpu_info(device: int = 0, lib=None) -> tuple[str, str]:
    """``(name, "major.minor")`` of CUDA device ``device`` from the driver API, or ``("unknown", "unknown")``.

    Args:
        device: the CUDA device ordinal.
        lib: the driver library (default ``libcuda.so.1``; the tests pass a stand-in).
    """
    lib = lib if lib is not None else _driver()
    if lib is None or lib.cuInit(0) != 0:
        return UNKNOWN, UNKNOWN
    handle = ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(handle), device) != 0:
        return UNKNOWN, UNKNOWN
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    if (lib.cuDeviceGetName(name, 256, handle) != 0
            or lib.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, handle) != 0
            or lib.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, handle) != 0):
        return UNKNOWN, UNKNOWN
    return name.value.decode(errors="replace") or UNKNOWN, f"{major.value}.{minor.value}"
