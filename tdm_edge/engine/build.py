"""ONNX -> TensorRT engine, for TensorRT 8.5, 8.6, 10.x and 11.x (after Polygraphy's loaders, kept thin).

``tensorrt`` is imported inside :func:`build_engine` (or passed in: the tests pass a stand-in named as such).
Every name of the TensorRT API that only some versions have comes from :mod:`tdm_edge.engine.versions`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import UsageError
from ..lint.trt_ops import lint_target
from ..runners.trt_env import import_tensorrt, load_plugins
from . import versions
from .sidecar import atomic_write, engine_record, sha256_file, write_sidecar

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


class ParserFailure(RuntimeError):
    """TensorRT's ONNX parser rejected the model; ``lines`` holds one line per failing node."""

    def __init__(self, lines: list[str], generation: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.generation = generation  # the lint's target for this TensorRT ("8.5", "8.6", "10.3", "11")


class BuildFailure(RuntimeError):
    """The builder returned no engine; the message holds TensorRT's last error, ``messages`` its whole log."""

    def __init__(self, message: str, messages: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.messages = list(messages)


@dataclass
class BuildReport:
    engine_path: Path
    sidecar_path: Path
    trt_version: str
    precision: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    pinned_fp32_layers: int
    engine_bytes: int
    seconds: float
    messages: list = field(default_factory=list)  # TensorRT's log: (severity name, message)
    notes: list = field(default_factory=list)  # our own warnings (DLA precision, a refused timing cache)

    def summary(self) -> str:
        flags = ", ".join(self.builder_flags) or "none"
        pinned = (f", {self.pinned_fp32_layers} TopK/LayerNorm layer(s) pinned to fp32" if self.pinned_fp32_layers
                  else "")
        return (f"{self.engine_path}: {self.engine_bytes / 2**20:.1f} MiB, TensorRT {self.trt_version}, "
                f"{self.precision} (builder flags: {flags}{pinned}), {self.seconds:.1f} s; "
                f"sidecar {self.sidecar_path}")


def onnx_precision(model) -> str:
    """"int8" for a Q/DQ graph, "fp16" when any initializer is fp16, else "fp32" (an ``onnx.ModelProto``)."""
    if any(node.op_type in _QDQ_OPS for node in model.graph.node):
        return "int8"
    if any(init.data_type == _FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def static_inputs(model) -> None:
    """:class:`UsageError` for an input with a dynamic dimension (the builder adds no optimisation profile)."""
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise UsageError(f"input {value.name!r} has a dynamic shape {shape}: TensorRT engines here have static "
                             "shapes, export with a fixed batch (tdm-edge export --batch N)")


def parser_error_lines(parser, model) -> list[str]:
    """One line per failing node: ``node 12 (TopK '/blocks.3/TopK'): <first error>``; graph errors without a node."""
    by_node: dict[int, list[str]] = {}
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        by_node.setdefault(int(error.node()), []).append(" ".join(str(error.desc()).split()))
    nodes = model.graph.node
    lines = []
    for index, descs in sorted(by_node.items(), key=lambda item: (item[0] < 0, item[0])):  # graph errors last
        more = f" (+{len(descs) - 1} more)" if len(descs) > 1 else ""
        if 0 <= index < len(nodes):
            node = nodes[index]
            lines.append(f"node {index} ({node.op_type} {node.name!r}): {descs[0]}{more}")
        else:
            lines.append(f"graph: {descs[0]}{more}")
    return lines


def capturing_logger(trt: ModuleType, verbose: bool = False):
    """A ``trt.ILogger`` that keeps TensorRT's messages in ``.messages`` (errors and warnings; everything with
    ``verbose``) instead of printing a log dump or dropping them; :func:`log_lines` turns them into lines."""

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []  # (severity name, message)

        def log(self, severity, msg: str) -> None:
            if verbose or int(severity) <= int(trt.ILogger.Severity.WARNING):
                name = getattr(severity, "name", str(severity).rsplit(".", 1)[-1])
                self.messages.append((name, str(msg)))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s in _ERRORS]

    return CapturingLogger()


_ERRORS = ("INTERNAL_ERROR", "ERROR")
WARNINGS_SHOWN = 3


def log_lines(messages: Sequence[tuple[str, str]], verbose: bool = False) -> list[str]:
    """What ``build`` prints of TensorRT's log: every error; the warnings summarised (count, the first few distinct
    ones); with ``verbose`` every message. One line each, prefixed with the severity."""
    def one(severity: str, text: str) -> str:
        return f"TensorRT {severity.lower().replace('_', ' ')}: {' '.join(text.split())}"

    if verbose:
        return [one(s, m) for s, m in messages]
    lines = [one(s, m) for s, m in messages if s in _ERRORS]
    warnings = [" ".join(m.split()) for s, m in messages if s == "WARNING"]
    distinct = list(dict.fromkeys(warnings))
    for text in distinct[:WARNINGS_SHOWN]:
        lines.append(one("WARNING", text if len(text) <= 200 else text[:197] + "..."))
    if len(distinct) > WARNINGS_SHOWN or len(warnings) > len(distinct):
        lines.append(f"TensorRT gave {len(warnings)} warning(s), {len(distinct)} distinct; --verbose prints them all")
    return lines


# LayerNorm's layers: native (NORMALIZATION, 8.6+) or the decomposed export's ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add,
# which the parser names after the ONNX nodes of the model's norm modules ("/blocks.3/norm1/ReduceMean", "/norm/...")
NORM_LAYER_TYPES = ("NORMALIZATION", "REDUCE", "ELEMENTWISE", "UNARY")


def is_layer_norm(layer) -> bool:
    """Whether a parsed layer computes LayerNorm (kept fp32 under the FP16 flag: its variance overflows fp16, the
    overflow TensorRT itself warns about). Shape and constant layers under a norm module are left alone."""
    kind = getattr(layer.type, "name", "")
    if kind == "NORMALIZATION":
        return True
    name = layer.name or ""
    return kind in NORM_LAYER_TYPES and ("/norm/" in name or "/norm1/" in name or "/norm2/" in name)


def _check_paths(onnx_path: Path, engine_path: Path, timing_cache: Path | None) -> None:
    if not onnx_path.is_file():
        raise UsageError(f"ONNX model not found: {onnx_path}")
    for out in (engine_path, timing_cache):
        if out is not None and not out.parent.is_dir():
            raise UsageError(f"directory does not exist: {out.parent}")
    if engine_path.resolve() == onnx_path.resolve():
        raise UsageError(f"the engine would overwrite the ONNX model {onnx_path}")


def _set_timing_cache(trt: ModuleType, config, cache_path: Path | None, notes: list[str]) -> None:
    """Give the builder the timing cache file's timings; a cache TensorRT refuses (another GPU or TensorRT) is set
    aside with a note and an empty one used, so it can never break the build (the file is rewritten after it)."""
    if cache_path is None:
        return
    data = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        notes.append(f"timing cache {cache_path} is from another GPU or TensorRT: not used; a new one replaces it")
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):
            raise BuildFailure(f"TensorRT refused even an empty timing cache ({cache_path})")


def _write_timing_cache(config, cache_path: Path | None, notes: list[str]) -> None:
    """After the engine is safely written: the builder's timings back to the file (a failure here costs a note)."""
    if cache_path is None:
        return
    try:
        cache = config.get_timing_cache()
        atomic_write(cache_path, bytes(memoryview(cache.serialize())))
    except (OSError, AttributeError) as err:
        notes.append(f"timing cache not saved to {cache_path}: {err}")


def _resolve_precision(version: str, precision: str | None, own: str, dla_core: int | None, strongly: bool,
                       notes: list[str]) -> str:
    """The build's precision from ``--precision``, the ONNX's own types, the version and DLA."""
    if precision is None:
        precision = own if versions.strongly_typed(version, strongly) or own == "int8" else "fp16"
    if dla_core is not None and precision == "fp32":
        precision = versions.dla_precision(version, precision, strongly)  # strongly typed: one line, refused
        notes.append("--dla: DLA runs fp16 or int8, so this fp32 build uses fp16 (as trtexec --useDLACore does)")
    versions.builder_flags(version, precision)  # an unknown precision: one line
    versions.precision_from_onnx(version, precision, own, strongly)
    return precision


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, precision: str | None = None,
                 workspace_mib: int | None = None, timing_cache: str | os.PathLike | None = None,
                 dla_core: int | None = None, plugins: Sequence[str | os.PathLike] = (),
                 memory_pools: dict[str, int] | None = None, strongly_typed: bool = False, verbose: bool = False,
                 trt: ModuleType | None = None, gpu: tuple[str, str] | None = None) -> BuildReport:
    """Build a serialized engine from an exported ONNX and write it with its sidecar, both atomically.

    Args:
        onnx_path: an ONNX written by ``tdm-edge export`` (its metadata goes into the sidecar).
        engine_path: where to write the engine; the sidecar goes to ``engine_path + ".json"``.
        precision: "fp32", "fp16" or "int8" (int8 needs a Q/DQ ONNX; strongly typed it must be the ONNX's).
            Default: the ONNX's own when strongly typed; elsewhere int8 for a Q/DQ ONNX, else fp16.
        workspace_mib: the builder's workspace limit (trtexec's ``--memPoolSize=workspace:N``).
        timing_cache: a timing-cache file, read if it exists (refused: a note and a fresh one) and written back
            after the engine.
        dla_core: build for this DLA core (Jetson), with GPU fallback for unsupported layers; fp32 becomes fp16.
        plugins: plugin libraries to load before parsing (their creators register themselves).
        memory_pools: ``{"WORKSPACE" | "DLA_MANAGED_SRAM" | ...: bytes}`` (:func:`versions.parse_memory_pools`).
        strongly_typed: build a strongly typed network on 10.x (the ONNX's types decide; always so on 11.x).
        verbose: keep every TensorRT message in the report, not only errors and warnings.
        trt: the ``tensorrt`` module (default: imported here; one line if it is missing).
        gpu: ``(name, compute capability)`` for the sidecar (default: the CUDA driver's device 0, no binding).
    """
    from ..metadata import read_metadata  # device side: no torch, no onnx for the metadata
    from ..provenance import warn_if_random

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    _check_paths(onnx_path, engine_path, cache_path)
    if workspace_mib is not None and workspace_mib <= 0:
        raise UsageError(f"--workspace must be a positive number of MiB, got {workspace_mib}")
    pools = dict(memory_pools or {})
    if workspace_mib is not None:
        pools["WORKSPACE"] = workspace_mib << 20
    trt = trt or import_tensorrt()
    version = trt.__version__
    net_flags = versions.network_flags(version, strongly_typed)
    meta = read_metadata(onnx_path)
    warn_if_random(meta, "build")
    import onnx  # after TensorRT: without TensorRT, build says so in one line whatever else is missing

    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    static_inputs(model)
    notes: list[str] = []
    precision = _resolve_precision(version, precision, onnx_precision(model), dla_core, strongly_typed, notes)
    flags = versions.builder_flags(version, precision, strongly_typed)
    if gpu is None:
        from ..runners.gpu_info import gpu_info

        gpu = gpu_info()

    start = time.perf_counter()
    logger = capturing_logger(trt, verbose)
    plugin_hashes = load_plugins(trt, logger, plugins) if plugins else {}
    builder = trt.Builder(logger)
    network = builder.create_network(sum(1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
                                         for name in net_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        raise ParserFailure(parser_error_lines(parser, model), lint_target(version))

    config = builder.create_builder_config()
    for pool, size in pools.items():
        config.set_memory_pool_limit(getattr(trt.MemoryPoolType, pool), size)
    for name in flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    pinned = 0
    if versions.pins_selection_fp32(version, precision, strongly_typed):  # selection and LayerNorm stay fp32
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.TOPK or is_layer_norm(layer):
                layer.precision = trt.float32
                pinned += 1
    if dla_core is not None:
        if not 0 <= dla_core < builder.num_DLA_cores:
            raise UsageError(f"--dla {dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    _set_timing_cache(trt, config, cache_path, notes)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = logger.errors()
        raise BuildFailure("TensorRT could not build the engine" + (": " + errors[-1] if errors else ""),
                           logger.messages)
    data = bytes(memoryview(serialized))
    atomic_write(engine_path, data)  # the engine first: nothing after it can lose it
    record = engine_record(trt_version=version, gpu_name=gpu[0], compute_capability=gpu[1], precision=precision,
                           dla_core=dla_core, onnx_path=onnx_path, onnx_sha256=sha256_file(onnx_path),
                           plugins=plugin_hashes, meta=meta)
    side = write_sidecar(engine_path, record)
    _write_timing_cache(config, cache_path, notes)
    return BuildReport(engine_path, side, version, precision, net_flags, flags, pinned, len(data),
                       time.perf_counter() - start, list(logger.messages), notes)
