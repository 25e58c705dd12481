"""Engine on first run: ``run MODEL.onnx --backend trt`` builds the engine once and reuses it (as jetson-inference).

The engine goes beside the ONNX (or into ``--engine-cache DIR``) as ``MODEL.<TensorRT version>.<device>.<precision>
.engine`` with its sidecar; every TensorRT version shares one timing cache per folder (``timing.<version>.cache``),
so a second model builds faster. A cached engine is reused only when its sidecar matches: the same ONNX (sha256),
TensorRT version, GPU compute capability, precision, DLA core and plugin libraries; otherwise (or with
``--rebuild``) it is rebuilt, with progress lines while TensorRT works (minutes on a Jetson).

Light at import (the options are added to ``run``/``bench``/``tune`` parsers): TensorRT and onnx load when used.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from ..errors import DeviceError, UsageError

CUDA_CHOICES = ("auto", "cuda-python", "pycuda")  # == runners.cuda_pycuda.CUDA_CHOICES (no import for --help)
HEARTBEAT_S = 30.0


def add_engine_arguments(cli, cache: bool = True) -> None:
    """``--plugins``, ``--cuda`` and (``cache``: run) ``--engine-cache``, ``--rebuild``: the TensorRT options of run,
    bench and tune (bench and tune build their engines from this run's exports: nothing to cache)."""
    group = cli.add_argument_group("TensorRT (--backend trt)")
    group.add_argument("--plugins", action="append", default=[], metavar="PATH",
                       help="plugin library an engine needs (repeatable); default: the ones its sidecar lists, found "
                       "beside the engine or on $TDM_EDGE_PLUGIN_PATH")
    if cache:
        group.add_argument("--engine-cache", default=None, metavar="DIR",
                           help="where an .onnx run on trt keeps its built engine (default: beside the .onnx)")
        group.add_argument("--rebuild", action="store_true", help="build the cached engine again even if it matches")
    group.add_argument("--cuda", choices=CUDA_CHOICES, default="auto",
                       help="CUDA binding of the TensorRT runner (default auto: cuda-python when it matches the "
                       "driver, else pycuda)")


def runner_options(args: argparse.Namespace) -> dict:
    """The :class:`~tdm_edge.runners.tensorrt.TensorRTRunner` keywords the command line's options give."""
    return {"plugins": list(getattr(args, "plugins", None) or []), "cuda": getattr(args, "cuda", None) or "auto"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def device_name(gpu: tuple[str, str], dla_core: int | None = None) -> str:
    """``("Orin", "8.7")`` -> ``"orin-sm87"`` (``-dla1`` for DLA core 1): the device part of a cached engine's name."""
    name, cc = gpu
    parts = [_slug(name.replace("NVIDIA", ""))]
    if cc and cc != "unknown":
        parts.append("sm" + cc.replace(".", ""))
    if dla_core is not None:
        parts.append(f"dla{dla_core}")
    return "-".join(parts)


def engine_path(onnx_path: str | os.PathLike, folder: str | os.PathLike | None, trt_version: str,
                gpu: tuple[str, str], precision: str, dla_core: int | None = None) -> Path:
    """``FOLDER/MODEL.<trt version>.<device>.<precision>.engine`` (FOLDER: the ONNX's own by default)."""
    onnx_path = Path(onnx_path)
    folder = Path(folder) if folder is not None else onnx_path.parent
    return folder / f"{onnx_path.stem}.{trt_version}.{device_name(gpu, dla_core)}.{precision}.engine"


def timing_cache_path(folder: str | os.PathLike, trt_version: str) -> Path:
    """One timing cache per TensorRT version and folder, shared by every model built there."""
    return Path(folder) / f"timing.{trt_version}.cache"


def mismatches(record: dict, *, onnx_sha256: str, trt_version: str, compute_capability: str, precision: str,
               dla_core: int | None, plugin_hashes: Sequence[str] | None) -> list[str]:
    """What differs between a cached engine's sidecar and what is asked for (empty: reuse it).

    ``plugin_hashes`` None: the caller named no plugins, so the sidecar's own are used (found at activation).
    """
    diffs = []
    if record.get("onnx", {}).get("sha256") != onnx_sha256:
        diffs.append("the ONNX changed")
    if record.get("tensorrt", {}).get("version") != trt_version:
        diffs.append(f"TensorRT {record.get('tensorrt', {}).get('version')} built it (this is {trt_version})")
    if record.get("gpu", {}).get("compute_capability") != compute_capability:
        diffs.append(f"built for compute capability {record.get('gpu', {}).get('compute_capability')}")
    if record.get("precision") != precision:
        diffs.append(f"built as {record.get('precision')}")
    if record.get("dla_core") != dla_core:
        diffs.append(f"built for DLA core {record.get('dla_core')}")
    if plugin_hashes is not None and sorted(p["sha256"] for p in record.get("plugins", [])) != sorted(plugin_hashes):
        diffs.append("built with other plugin libraries")
    return diffs


class _Heartbeat:
    """Prints ``still building ... (M:SS)`` every ``every`` seconds until the block ends (TensorRT is silent)."""

    def __init__(self, log: Callable[[str], None], what: str, every: float = HEARTBEAT_S) -> None:
        self.log, self.what, self.every = log, what, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.every):
            elapsed = int(time.monotonic() - start)
            self.log(f"still building {self.what} ({elapsed // 60}:{elapsed % 60:02d})")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _stderr(line: str) -> None:
    print(f"tdm-edge: {line}", file=sys.stderr, flush=True)


def _precision(onnx_path: Path, precision: str | None, version: str, dla_core: int | None) -> str:
    """The precision ``build_engine`` will use (it names the cached file before the build)."""
    import onnx

    from . import versions
    from .build import onnx_precision

    own = onnx_precision(onnx.load(os.fspath(onnx_path), load_external_data=False))
    if precision is None:
        precision = own if versions.strongly_typed(version) or own == "int8" else "fp16"
    if dla_core is not None:
        precision = versions.dla_precision(version, precision)
    return precision


def cached_engine(onnx_path: str | os.PathLike, *, precision: str | None = None,
                  cache_dir: str | os.PathLike | None = None, rebuild: bool = False,
                  plugins: Sequence[str | os.PathLike] = (), dla_core: int | None = None, verbose: bool = False,
                  log: Callable[[str], None] = _stderr, trt: ModuleType | None = None,
                  gpu: tuple[str, str] | None = None, heartbeat_s: float = HEARTBEAT_S) -> Path:
    """The engine for ``onnx_path`` on this TensorRT and GPU: the cached one if its sidecar matches, else built.

    Args:
        onnx_path: an ONNX written by ``tdm-edge export``.
        precision: as ``tdm-edge build --precision`` (default: fp16, int8 for a Q/DQ ONNX; TensorRT 11: the ONNX's).
        cache_dir: the folder for engines and the timing cache (default: the ONNX's folder).
        rebuild: build even when a matching engine is cached.
        plugins: plugin libraries to build with (their sha256 must match a cached engine's).
        dla_core: build for this DLA core.
        verbose: print TensorRT's whole log.
        log: where progress lines go (default: stderr).
        trt, gpu: the ``tensorrt`` module and ``(name, compute capability)`` (defaults: imported; the driver's).
    """
    from ..provenance import sha256_file
    from ..runners.trt_env import import_tensorrt, read_sidecar
    from .build import BuildFailure, ParserFailure, build_engine, log_lines

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UsageError(f"model not found: {onnx_path}")
    folder = Path(cache_dir) if cache_dir is not None else onnx_path.parent
    if not folder.is_dir():
        raise UsageError(f"--engine-cache {folder}: no such directory")
    trt = trt or import_tensorrt()
    version = trt.__version__
    if gpu is None:
        from ..runners.gpu_info import gpu_info

        gpu = gpu_info()
    precision = _precision(onnx_path, precision, version, dla_core)
    built = engine_path(onnx_path, folder, version, gpu, precision, dla_core)
    hashes = [sha256_file(p) for p in plugins] if plugins else None
    if built.is_file() and not rebuild:
        try:
            record = read_sidecar(built)
            diffs = mismatches(record, onnx_sha256=sha256_file(onnx_path), trt_version=version,
                               compute_capability=gpu[1], precision=precision, dla_core=dla_core,
                               plugin_hashes=hashes)
        except UsageError as err:
            diffs = [str(err)]
        if not diffs:
            log(f"using the cached engine {built}")
            return built
        log(f"the cached engine {built.name} does not match ({'; '.join(diffs)}): rebuilding it")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write the engine into {folder}: give a writable --engine-cache DIR")
    log(f"building {built.name} with TensorRT {version} ({precision}); once, then cached (minutes on a Jetson)")
    try:
        with _Heartbeat(log, built.name, heartbeat_s):
            report = build_engine(onnx_path, built, precision=precision,
                                  timing_cache=timing_cache_path(folder, version), dla_core=dla_core,
                                  plugins=plugins, verbose=verbose, trt=trt, gpu=gpu)
    except ParserFailure as err:
        for line in err.lines:
            log(line)
        raise UsageError(f"TensorRT's ONNX parser rejected {onnx_path} ({len(err.lines)} node(s)); "
                         f"tdm-edge check {onnx_path} --trt {err.generation} lints it without TensorRT") from None
    except BuildFailure as err:
        for line in log_lines(err.messages, verbose):
            log(line)
        raise DeviceError(str(err)) from None
    for line in log_lines(report.messages, verbose) + [f"warning: {n}" for n in report.notes]:
        log(line)
    log(f"built {built} in {report.seconds:.0f} s")
    return built


def engine_for_args(onnx_path: str | os.PathLike, args: argparse.Namespace, precision: str | None = None) -> Path:
    """:func:`cached_engine` with the command line's ``--engine-cache``, ``--rebuild``, ``--plugins``."""
    return cached_engine(onnx_path, precision=precision, cache_dir=getattr(args, "engine_cache", None),
                         rebuild=bool(getattr(args, "rebuild", False)), plugins=getattr(args, "plugins", None) or ())
