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


def strongly_typed(version: str) -> bool:
    """True where the network's types decide precision (11.x): no FP16/INT8 builder flags exist there."""
    return generation(version) == "11"


def network_flags(version: str) -> tuple[str, ...]:
    """Names in ``trt.NetworkDefinitionCreationFlag`` to set when creating the network."""
    gen = generation(version)
    if gen in ("8.5", "8.6"):
        return ("EXPLICIT_BATCH",)
    if gen == "11":
        return ("STRONGLY_TYPED",)
    return ()


def builder_flags(version: str, precision: str) -> tuple[str, ...]:
    """Names in ``trt.BuilderFlag`` that select ``precision`` ("fp32", "fp16", "int8") on this version.

    fp16: ``FP16`` plus ``OBEY_PRECISION_CONSTRAINTS`` (the builder pins token selection to fp32). int8: ``INT8``
    for the Q/DQ layers, ``FP16`` for the rest, the same constraint flag. Strongly typed 11.x: none.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    if strongly_typed(version) or precision == "fp32":
        return ()
    flags = ("INT8", "FP16") if precision == "int8" else ("FP16",)
    return flags + ("OBEY_PRECISION_CONSTRAINTS",)


def pins_selection_fp32(version: str, precision: str) -> bool:
    """Whether the builder sets the TopK layers' precision to fp32 (weakly typed builds below fp32 only)."""
    return "OBEY_PRECISION_CONSTRAINTS" in builder_flags(version, precision)


def precision_from_onnx(version: str, precision: str, onnx_precision: str) -> None:
    """Check ``--precision`` against the ONNX's own precision where that matters; :class:`UsageError` if not.

    Args:
        version: the TensorRT version.
        precision: what the user asked for.
        onnx_precision: what the ONNX holds: "int8" (Q/DQ nodes), "fp16" (fp16 weights) or "fp32".
    """
    if strongly_typed(version):
        if precision != onnx_precision:
            raise UsageError(
                f"TensorRT {version} builds strongly typed networks: the precision is the ONNX's ({onnx_precision}),"
                f" so --precision {precision} needs an {precision} ONNX"
                + (" (tdm-edge quantize writes the Q/DQ graph)" if precision == "int8" else
                   " (an fp16 export that keeps token selection in fp32)" if precision == "fp16" else ""))
    elif precision == "int8" and onnx_precision != "int8":
        raise UsageError("--precision int8 needs a Q/DQ ONNX (tdm-edge quantize writes one); "
                         "tdm-edge does no implicit INT8 calibration")
