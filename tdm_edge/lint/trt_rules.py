"""The built-in TensorRT lint rules: ``rule(info, node, trt) -> Iterable[Finding]`` (see :mod:`.check`).

Each rule looks at one node that a built-in importer takes and says why that importer (or the builder) would not
build it as ONNX means it. The data and their sources are in :mod:`tdm_edge.lint.trt_ops`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import onnx

from . import trt_ops
from .check import MISREAD, SHAPE, Finding, finding, imported_only
from .model_info import ModelInfo, attr


def data_dependent(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterator[Finding]:
    """NonZero, Unique, NonMaxSuppression, Compress: output shapes that depend on the values (METHOD.md)."""
    if node.op_type in trt_ops.DATA_DEPENDENT_OPS:
        yield finding(node, "output shape depends on the input values (data-dependent shape)", SHAPE)


def constant_inputs(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterator[Finding]:
    """Inputs that must be build-time constants, and those the importer wants as an initializer or Constant."""
    op = node.op_type
    if op not in trt_ops.CONSTANT_INPUTS:
        return
    index, what, since = trt_ops.CONSTANT_INPUTS[op]
    name = node.input[index] if info.opset >= since and len(node.input) > index else ""
    if not name:
        return
    if op == "Pad" and trt.within(until=trt_ops.PAD_AXES_UNSUPPORTED_UNTIL):
        yield finding(node, f"has an 'axes' input ({name}); the TensorRT {trt.name} Pad importer supports none")
    elif name not in info.constants:
        yield finding(node, f"input '{what}' ({name}) is not a build-time constant")
    elif (op in trt_ops.WEIGHTS_ONLY_UNTIL and name not in info.weights
          and trt.within(until=trt_ops.WEIGHTS_ONLY_UNTIL[op])):
        yield finding(node, f"input '{what}' ({name}) is computed from constants; the TensorRT {trt.name} {op} "
                      "importer needs an initializer or a Constant node (it folds nothing): constant-fold the "
                      "model first (polygraphy surgeon sanitize --fold-constants)")


def topk(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterator[Finding]:
    """TopK: K <= 3840 (ITopKLayer), ``sorted=1`` from 10.1 (operators.md)."""
    if node.op_type != "TopK":
        return
    if info.opset < 10:
        k = attr(node, "k")
    else:
        value = info.constants.get(node.input[1]) if len(node.input) > 1 else None
        k = int(np.asarray(value).reshape(-1)[0]) if value is not None and np.size(value) == 1 else None
    if k is not None and k > trt_ops.TOPK_MAX_K:
        yield finding(node, f"K = {k}; TensorRT's TopK layer supports K <= {trt_ops.TOPK_MAX_K}")
    since = trt_ops.TOPK_SORTED_SINCE
    if info.opset >= 11 and attr(node, "sorted", 1) != 1 and trt.within(since=since):
        yield finding(node, f"sorted=0; the TensorRT parser requires sorted=1 from {since[0]}.{since[1]} on "
                      f"(checked for {trt.name}; --trt 10.0 accepts it)")


def scatter_reduction(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterator[Finding]:
    """ScatterElements/ScatterND ``reduction``: dropped silently by 8.x, refused for ScatterND from 10.0."""
    if node.op_type not in ("ScatterElements", "ScatterND"):
        return
    reduction = attr(node, "reduction", "none")
    if reduction == "none":
        return
    if trt.within(until=trt_ops.SCATTER_REDUCTION_SILENT_UNTIL):
        yield finding(node, f"reduction='{reduction}' is imported without the reduction by TensorRT {trt.name} "
                      "(it silently overwrites)", MISREAD)
    elif node.op_type in trt_ops.SCATTER_REDUCTION_REJECTED:
        yield finding(node, f"reduction='{reduction}' is not supported by the TensorRT {trt.name} parser")


def input_types(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterator[Finding]:
    """Input types the importer of ``node`` refuses (:data:`tdm_edge.lint.trt_ops.INPUT_TYPE_RULES`)."""
    for rule in trt_ops.INPUT_TYPE_RULES:
        if node.op_type not in rule.ops or not trt.within(rule.since, rule.until):
            continue
        indices = range(len(node.input)) if rule.inputs is None else rule.inputs
        bad = []
        for i in indices:
            name = node.input[i] if i < len(node.input) else ""
            seen = info.importer_type(name, trt.first) if name else ""
            if seen in rule.invalid:
                onnx_type = onnx.TensorProto.DataType.Name(info.elem_type(name))
                bad.append(f"input {i} ({name}) is {onnx_type}" + (f" ({seen} to TensorRT 8)"
                                                                  if seen != onnx_type else ""))
        if bad:
            yield finding(node, f"{'; '.join(bad)}: the TensorRT {trt.name} {node.op_type} importer rejects that "
                          f"type ({rule.source})")


RULES = [imported_only(rule) for rule in (input_types, data_dependent, constant_inputs, topk, scatter_reduction)]
