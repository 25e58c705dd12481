"""Which TensorRT is here, and does an engine belong to it: shared by ``tdm-edge build`` and the TensorRT runner.

Light on purpose (no tensorrt, torch or onnx import at module level): :func:`import_tensorrt` imports TensorRT
when asked and turns its absence into one line saying how to get it. The engine's sidecar
(``MODEL.engine.json``, written by :mod:`tdm_edge.engine.sidecar`) is read and compared here, because the runner
must check it *before* deserialising, and runners sit below the engine stage.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import UsageError
from ..provenance import sha256_file

MIN_VERSION = (8, 5)
PLUGIN_PATH_ENV = "TDM_EDGE_PLUGIN_PATH"
UNKNOWN = "unknown"  # a GPU name or compute capability nobody could tell
SIDECAR_FORMAT = "tdm-edge-engine/1"


class TensorRTMissing(UsageError):
    """TensorRT's Python bindings cannot be imported; the message says how to get them."""


class EngineMismatch(UsageError):
    """An engine built by another TensorRT or for another GPU; the message is one line."""


def install_hint() -> str:
    """How to get TensorRT on this machine: JetPack's packages on a Jetson, the ``trt`` extra elsewhere."""
    if platform.machine() == "aarch64" and os.path.exists("/etc/nv_tegra_release"):
        return ("on a Jetson, TensorRT comes with JetPack: sudo apt install python3-libnvinfer (in a venv, create it "
                "with --system-site-packages)")
    return "install it with: pip install 'tdm-edge[trt]' (TensorRT and cuda-python wheels for x86_64 + CUDA 12/13)"


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)``; ``"8.6"`` -> ``(8, 6)``. Raises :class:`UsageError` for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)*)(?:[.+-]?(?:post|dev|rc|a|b)\w*)?\s*", str(text))
    if not match:
        raise UsageError(f"not a TensorRT version: {text!r}")
    return tuple(int(p) for p in match.group(1).split("."))


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or :class:`TensorRTMissing` (one line) when it is absent or older than 8.5."""
    try:
        import tensorrt
    except ImportError as err:  # also raised when the wheel is there but libnvinfer is not
        reason = "not installed" if getattr(err, "name", None) == "tensorrt" else f"does not import ({err})"
        raise TensorRTMissing(f"TensorRT is {reason}; {install_hint()}") from None
    version = parse_version(tensorrt.__version__)
    if version[:2] < MIN_VERSION:
        raise TensorRTMissing(f"TensorRT {tensorrt.__version__} is too old: tdm-edge needs 8.5 or newer")
    return tensorrt



def load_plugins(trt: ModuleType, logger, paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """Load plugin libraries (their creators register themselves) and TensorRT's own; file name -> sha256."""
    loaded = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"plugin library not found: {path}")
        try:
            lib = ctypes.CDLL(os.fspath(path.resolve()), mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            raise UsageError(f"cannot load plugin library {path}: {err}") from None
        # From TensorRT 8.6 on, ours registers nothing when loaded (only 8.5 does); initTdmMergePlugins registers
        # each creator once (plugins/README.md, "Build and load")
        init = getattr(lib, "initTdmMergePlugins", None)
        if init is not None:
            init.restype = ctypes.c_bool
            if not init(None, b""):
                raise UsageError(f"plugin library {path} could not register its creators (see TensorRT's log)")
        loaded[path.name] = sha256_file(path)
    trt.init_libnvinfer_plugins(logger, "")
    return loaded


def plugin_search_path(engine_path: str | os.PathLike) -> list[Path]:
    """Where an engine's plugin libraries are looked for: beside the engine, then ``$TDM_EDGE_PLUGIN_PATH``."""
    extra = [Path(p) for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    return [Path(engine_path).resolve().parent] + extra


def plugins_from_sidecar(record: dict, engine_path: str | os.PathLike) -> list[Path]:
    """The plugin libraries the sidecar lists, found by file name on :func:`plugin_search_path` with the same sha256.

    Raises :class:`EngineMismatch` (one line naming the library, its sha256 and where it was looked for) when one
    is not there or differs.
    """
    found = []
    folders = plugin_search_path(engine_path)
    for entry in record.get("plugins", []):
        name, digest = entry["file"], entry["sha256"]
        candidates = [folder / name for folder in folders if (folder / name).is_file()]
        match = next((c for c in candidates if sha256_file(c) == digest), None)
        if match is None:
            where = " or ".join(str(f) for f in folders)
            state = "differs (another build)" if candidates else "is not"
            raise EngineMismatch(f"the engine needs plugin library {name} (sha256 {digest}), which {state} in "
                                 f"{where}: pass it with --plugins PATH, or add its folder to ${PLUGIN_PATH_ENV}")
        found.append(match)
    return found


def check_plugins(record: dict, loaded: dict[str, str]) -> None:
    """:class:`EngineMismatch` unless the plugin libraries loaded are the ones the engine was built with."""
    built = {p["file"]: p["sha256"] for p in record.get("plugins", [])}
    if set(built.values()) - set(loaded.values()):
        missing = sorted((n, h) for n, h in built.items() if h not in loaded.values())
        names = ", ".join(f"{n} (sha256 {h})" for n, h in missing)
        raise EngineMismatch(f"the engine was built with plugin library {names}, which is not loaded (or differs): "
                             "pass the same library with --plugins PATH")


# TensorRT's DataType names -> numpy, ours: ``trt.nptype`` of 8.5.1-8.5.2 reads ``np.bool``, which numpy 1.24-1.26
# lack (AttributeError at every activation on JetPack 5.1.x with a current numpy).
NUMPY_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt_dtype, tensor: str = "tensor") -> np.dtype:
    """The numpy dtype of a ``trt.DataType`` member, by name; :class:`UsageError` for types numpy lacks (BF16, FP8)."""
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if name not in NUMPY_DTYPES:
        raise UsageError(f"{tensor} is TensorRT {name}, which numpy cannot hold: export with fp32 inputs and outputs")
    return np.dtype(NUMPY_DTYPES[name])


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``MODEL.engine`` -> ``MODEL.engine.json`` (beside it; never the ONNX's ``MODEL.json``)."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def read_sidecar(engine_path: str | os.PathLike) -> dict:
    """The sidecar of ``engine_path``; :class:`UsageError` (one line) when it is missing or not ours."""
    side = sidecar_path(engine_path)
    try:
        record = json.loads(side.read_text())
    except FileNotFoundError:
        raise UsageError(f"{side} is missing: build the engine with tdm-edge build, which writes it beside the "
                         "engine (or pass check_sidecar=False to skip the check)") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {side}: {err}") from None
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        raise UsageError(f"{side} is not a tdm-edge engine sidecar (format {SIDECAR_FORMAT})")
    return record


def check_compatible(record: dict, trt_version: str, gpu_name: str, compute_capability: str) -> None:
    """Raise :class:`EngineMismatch` (one line) unless the engine was built by this TensorRT for this kind of GPU.

    TensorRT engines are tied to the exact TensorRT version and to the GPU's compute capability; deserialising one
    elsewhere fails with a long log or, worse, crashes. The GPU name differing with an equal compute capability
    (two boards of one family) is allowed.

    Args:
        record: the sidecar (:func:`read_sidecar`).
        trt_version: ``tensorrt.__version__`` of this process.
        gpu_name: this GPU's name.
        compute_capability: this GPU's ``"major.minor"``.
    """
    built = record.get("tensorrt", {}).get("version")
    gpu = record.get("gpu", {})
    problems = []
    if built != trt_version:
        problems.append(f"with TensorRT {built} (this is {trt_version})")
    known = UNKNOWN not in (gpu.get("compute_capability"), compute_capability)  # then TensorRT itself decides
    if known and gpu.get("compute_capability") != compute_capability:
        problems.append(f"for a GPU of compute capability {gpu.get('compute_capability')} ({gpu.get('name')}; "
                        f"this one is {compute_capability}, {gpu_name})")
    if problems:
        raise EngineMismatch(f"the engine was built {' and '.join(problems)}: rebuild it here with "
                             f"tdm-edge build {record.get('onnx', {}).get('file', 'MODEL.onnx')}")
