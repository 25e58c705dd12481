"""The CUDA runtime through cuda-python (``cuda.bindings.runtime``), every call checked.

Why cuda-python and not pycuda (docs/tensorrt.md says more): it drives the CUDA *runtime* API on the device's
primary context, the same context torch uses, so the TensorRT runner and the torch-cuda backend can be measured in
one process (pycuda's own context next to torch's is the known source of hangs); it binds CUDA graphs, which pycuda
does not; and it installs as a wheel (pycuda builds from source against a CUDA toolkit). Its calls return
``(error, *values)`` instead of raising, so every call here goes through :func:`check`.
"""

from __future__ import annotations

from types import ModuleType

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
