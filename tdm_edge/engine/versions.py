"""Which TensorRT API path for which TensorRT version: pure functions of a version string.

One notion of "which TensorRT" for the whole project: the generations are the lint's
(:data:`tdm_edge.lint.trt_ops.TRT_VERSIONS`: "8.5", "8.6", "10" = any 10.x, "11" = any 11.x), and every name
of the TensorRT API that exists in some generations only is returned by a function here, never written as
``trt.X.Y`` in the builder or runner. The API conformance test (tests/engine/test_api_conformance.py) checks
each name these functions return for a generation against that generation's real bindings, and every ``trt.X.Y``
written in the code against all of them.

What differs, read from the bindings of TensorRT 8.6.1, 10.3.0 and 11.0.0 (``tensorrt.so`` in the wheels):

- Network creation: 8.x needs ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` (implicit batch is the
  default there); 10.x networks are explicit-batch by default (the flag is a deprecated no-op); 11.x has no
  ``EXPLICIT_BATCH`` and builds strongly typed networks (``STRONGLY_TYPED``).
- Precision: 8.x and 10.x choose kernels' precision from ``BuilderFlag.FP16`` / ``INT8`` (INT8 from a Q/DQ
  graph, we do no implicit calibration) and honour per-layer constraints with ``OBEY_PRECISION_CONSTRAINTS``;
  11.x has none of those flags: the precision is the ONNX's types.
- Inference: every supported version (8.5 on) has the tensor-name API (``set_tensor_address`` +
  ``execute_async_v3``, added in 8.5), so the runner has one path; the binding API (``execute_async_v2``,
  gone in 10.0) is never used.
"""

from __future__ import annotations

from ..errors import UsageError
from ..lint.trt_ops import TRT_VERSIONS
from ..runners.trt_env import MIN_VERSION, parse_version

PRECISIONS = ("fp32", "fp16", "int8")


def generation(version: str) -> str:
    """The lint's name for a TensorRT version: ``"8.5.2.2"`` -> ``"8.5"``, ``"10.3.0"`` -> ``"10"``.

    Raises :class:`UsageError` for versions before 8.5 or after 11.x (their API is not known here).
    """
    parts = parse_version(version)
    major, minor = parts[0], (parts[1] if len(parts) > 1 else 0)
    name = f"{major}.{minor}" if major == 8 else str(major)
    if (major, minor) < MIN_VERSION or name not in TRT_VERSIONS:
        raise UsageError(f"TensorRT {version} is not supported: tdm-edge knows {', '.join(TRT_VERSIONS)} "
                         "(8.5 to 11.x)")
    return name


def strongly_typed(version: str, requested: bool = False) -> bool:
    """True where the network's types decide precision: always on 11.x (no FP16/INT8 builder flags exist there), and
    on 10.x when asked (``--strongly-typed``, ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``); 8.x has no such
    networks (:class:`UsageError` when asked)."""
    gen = generation(version)
    if requested and gen in ("8.5", "8.6"):
        raise UsageError(f"--strongly-typed needs TensorRT 10 or newer (this is {version}): build the fp16 ONNX "
                         "with --precision fp16, or an fp32 ONNX (the FP16 flag lowers it)")
    return gen == "11" or requested


def network_flags(version: str, strongly: bool = False) -> tuple[str, ...]:
    """Names in ``trt.NetworkDefinitionCreationFlag`` to set when creating the network."""
    gen = generation(version)
    if gen in ("8.5", "8.6"):
        return ("EXPLICIT_BATCH",)
    if strongly_typed(version, strongly):
        return ("STRONGLY_TYPED",)
    return ()


# trtexec's --memPoolSize names -> trt.MemoryPoolType (the same pools, the same spelling as trtexec)
MEMORY_POOLS = {"workspace": "WORKSPACE", "dlaSRAM": "DLA_MANAGED_SRAM", "dlaLocalDRAM": "DLA_LOCAL_DRAM",
                "dlaGlobalDRAM": "DLA_GLOBAL_DRAM"}


def parse_memory_pools(spec: str) -> dict[str, int]:
    """trtexec's ``--memPoolSize`` syntax: ``"workspace:1024,dlaSRAM:0.5M"`` -> ``{"WORKSPACE": bytes, ...}``.

    Sizes are MiB without a suffix (as trtexec since 8.6), or with ``B``, ``K``, ``M``, ``G``.
    """
    units = {"B": 1, "K": 2**10, "M": 2**20, "G": 2**30}
    pools = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, size = item.partition(":")
        if name not in MEMORY_POOLS:
            raise UsageError(f"--mem-pool-size: unknown pool {name!r}; trtexec's names: {', '.join(MEMORY_POOLS)}")
        size = size.strip()
        unit = units.get(size[-1:].upper())
        number = size[:-1] if unit else size
        try:
            value = float(number) * (unit or units["M"])
        except ValueError:
            raise UsageError(f"--mem-pool-size: {item!r} is not POOL:SIZE (e.g. workspace:1024 for 1 GiB)") from None
        if value <= 0:
            raise UsageError(f"--mem-pool-size: {name} must be positive, got {size}")
        pools[MEMORY_POOLS[name]] = int(value)
    return pools


def builder_flags(version: str, precision: str, strongly: bool = False) -> tuple[str, ...]:
    """Names in ``trt.BuilderFlag`` that select ``precision`` ("fp32", "fp16", "int8") on this version.

    fp16: ``FP16`` plus ``OBEY_PRECISION_CONSTRAINTS`` (the builder pins token selection to fp32). int8: ``INT8``
    for the Q/DQ layers, ``FP16`` for the rest, the same constraint flag. Strongly typed 11.x: none.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    if strongly_typed(version, strongly) or precision == "fp32":
        return ()
    flags = ("INT8", "FP16") if precision == "int8" else ("FP16",)
    return flags + ("OBEY_PRECISION_CONSTRAINTS",)


def pins_selection_fp32(version: str, precision: str, strongly: bool = False) -> bool:
    """Whether the builder sets the TopK layers' precision to fp32 (weakly typed builds below fp32 only)."""
    return "OBEY_PRECISION_CONSTRAINTS" in builder_flags(version, precision, strongly)


def dla_precision(version: str, precision: str, strongly: bool = False) -> str:
    """The precision a DLA build uses: DLA runs fp16 and int8 only. Weakly typed, fp32 becomes fp16 (as trtexec
    does: it sets FP16 for ``--useDLACore`` without ``--int8``); strongly typed, the ONNX must already be fp16."""
    if precision != "fp32":
        return precision
    if strongly_typed(version, strongly):
        raise UsageError("--dla: DLA runs fp16 or int8, and a strongly typed build keeps the ONNX's fp32: export it "
                         "with tdm-edge export --precision fp16 (or quantize it)")
    return "fp16"


def precision_from_onnx(version: str, precision: str, onnx_precision: str, strongly: bool = False) -> None:
    """Check ``--precision`` against the ONNX's own precision where that matters; :class:`UsageError` if not.

    Args:
        version: the TensorRT version.
        precision: what the user asked for.
        onnx_precision: what the ONNX holds: "int8" (Q/DQ nodes), "fp16" (fp16 weights) or "fp32".
    """
    if strongly_typed(version, strongly):
        if precision != onnx_precision:
            what = f"TensorRT {version} builds" if generation(version) == "11" else "--strongly-typed builds"
            raise UsageError(
                f"{what} strongly typed networks: the precision is the ONNX's ({onnx_precision}),"
                f" so --precision {precision} needs an {precision} ONNX"
                + (" (tdm-edge calibrate writes the Q/DQ graph)" if precision == "int8" else
                   ": tdm-edge export --precision fp16 writes one (token selection kept in fp32)"
                   if precision == "fp16" else ""))
    elif precision == "int8" and onnx_precision != "int8":
        raise UsageError("--precision int8 needs a Q/DQ ONNX (tdm-edge calibrate writes one); "
                         "tdm-edge does no implicit INT8 calibration")


def _package_version(*names: str) -> str | None:
    """The installed version of the first distribution found among ``names`` (no import), or None."""
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def backend_versions(backend: str) -> dict:
    """What ``bench`` records about the software under a backend: versions, the GPU, the CUDA binding.

    ``trt``: TensorRT (``tensorrt.__version__``: JetPack's apt package has no pip metadata), cuda-python, pycuda;
    ``ort``: ONNX Runtime; ``torch``/``torch-cuda``: torch and the CUDA it was built with. Every backend gets the
    GPU as the CUDA driver names it (``"unknown"`` without one). Nothing missing raises: its value is None.
    """
    from ..runners.gpu_info import gpu_info

    found: dict = {}
    if backend == "trt":
        try:
            import tensorrt

            found["tensorrt"] = str(tensorrt.__version__)
        except ImportError:
            found["tensorrt"] = None
        found["cuda_python"] = _package_version("cuda-bindings", "cuda-python")
        found["pycuda"] = _package_version("pycuda")
    elif backend == "ort":
        found["onnxruntime"] = _package_version("onnxruntime", "onnxruntime-gpu")
    elif backend in ("torch", "torch-cuda"):
        found["torch"] = _package_version("torch")
        import sys

        torch = sys.modules.get("torch")  # imported by the backend already; never imported here for a version
        found["torch_cuda"] = getattr(getattr(torch, "version", None), "cuda", None) if torch else None
    name, capability = gpu_info()
    found["gpu"] = {"name": name, "compute_capability": capability}
    return found
