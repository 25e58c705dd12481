"""Stand-ins for the doctor's tests, named as such: a Jetson's file tree, a CUDA driver library, OpenCV, TensorRT,
cuda-python and pycuda modules (no Jetson, GPU, TensorRT or pycuda here). Their names and return shapes are the
real ones': pycuda's ``get_version()`` tuple and ``get_driver_version()`` int and ``VERSION_TEXT`` (pycuda's
src/wrapper/wrap_cudadrv.cpp and pycuda/__init__.py), cuda-python's ``(error, value)`` results.
"""

from __future__ import annotations

import types
from pathlib import Path

# the real formats: /etc/nv_tegra_release of L4T R35.4.1 (JetPack 5.1.2) and R36.4.3 (JetPack 6.2)
TEGRA_R35 = ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
             "DATE: Tue Aug  1 19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
TEGRA_R36 = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
             "DATE: Wed Jan  8 01:49:37 UTC 2025\n")
NVPMODEL = "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n0\n"

GST_BUILD = """
General configuration for OpenCV 4.5.4 =====================================
  Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (58.54.100)
    GStreamer:                   YES (1.16.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
PIP_BUILD = GST_BUILD.replace("GStreamer:                   YES (1.16.3)", "GStreamer:                   NO")


def jetson_tree(root: Path, tegra: str = TEGRA_R35, model: str = "NVIDIA Jetson AGX Orin Developer Kit") -> Path:
    """A folder laid out like a Jetson's ``/``: the release file, the board model, GPU and CPU clocks."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(tegra)
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    gpu = root / "sys/class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    (gpu / "cur_freq").write_text("1300500000\n")  # Hz
    (gpu / "max_freq").write_text("1300500000\n")
    (root / "sys/class/devfreq/3d00000.nvdla0").mkdir()  # another devfreq node, not the GPU
    cpu = root / "sys/devices/system/cpu/cpu0/cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_cur_freq").write_text("729600\n")  # kHz
    (cpu / "cpuinfo_max_freq").write_text("2201600\n")
    return root


class FakeDriverLib:
    """Stand-in for ``ctypes.CDLL("libcuda.so.1")``: writes through the ``byref`` pointers as the driver does."""

    def __init__(self, version: int = 11040, name: bytes = b"Orin", cc=(8, 7), init_error: int = 0) -> None:
        self.version, self.name, self.cc, self.init_error = version, name, cc, init_error

    def cuDriverGetVersion(self, ref):
        ref._obj.value = self.version
        return 0

    def cuInit(self, flags):
        return self.init_error

    def cuDeviceGet(self, ref, ordinal):
        ref._obj.value = ordinal
        return 0

    def cuDeviceGetName(self, buffer, size, device):
        buffer.value = self.name
        return 0

    def cuDeviceGetAttribute(self, ref, attribute, device):
        ref._obj.value = {75: self.cc[0], 76: self.cc[1]}[attribute]
        return 0


def importer(modules: dict):
    """An ``importlib.import_module`` stand-in: a module from ``modules``, an exception instance raised, or absent."""
    def import_module(name: str):
        found = modules.get(name)
        if isinstance(found, BaseException):
            raise found
        if found is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return found
    return import_module


def fake_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def fake_cv2(path: str, build: str = GST_BUILD, version: str = "4.5.4") -> types.ModuleType:
    """Stand-in for ``cv2``: a version, a file and ``getBuildInformation()``."""
    return fake_module("cv2", __version__=version, __file__=path, getBuildInformation=lambda: build)


def fake_cudart(driver: int, runtime: int) -> types.ModuleType:
    """Stand-in for ``cuda.bindings.runtime``: results are ``(error, value)`` with error 0."""
    return fake_module("cuda.bindings.runtime", cudaDriverGetVersion=lambda: (0, driver),
                       cudaRuntimeGetVersion=lambda: (0, runtime))


def fake_pycuda(built=(11, 4, 0), driver: int = 11040):
    """Stand-ins for ``pycuda`` and ``pycuda.driver``."""
    return {"pycuda": fake_module("pycuda", VERSION_TEXT="2024.1.2"),
            "pycuda.driver": fake_module("pycuda.driver", get_version=lambda: built,
                                         get_driver_version=lambda: driver)}
