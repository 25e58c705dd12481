"""TensorRT's rules for explicit quantization (Q/DQ nodes), as findings for :func:`tdm_edge.lint.check.check_model`.

TensorRT 8.5 to 11 build INT8 engines from QuantizeLinear/DequantizeLinear pairs and fuse them into the
neighbouring layers. What it needs (TensorRT developer guide, "Explicit quantization"):

- the quantized type is int8 (TensorRT 10 and 11 also take fp8 E4M3; int4 only for dequantized weights); a Q/DQ
  without a zero point means uint8, which TensorRT rejects (an explicit UINT8 zero point is left to the importer
  rule of :mod:`tdm_edge.lint.trt_ops`, which knows which releases refuse it);
- symmetric quantization: every zero point is 0, every scale a positive build-time constant;
- activations per tensor (a scalar scale); weights per tensor or per output channel: the DQ's ``axis`` is the
  output-channel axis of the weight for its consumer (MatMul B ``[in, out]``: the last axis; Gemm: 0 with
  ``transB=1``, else 1; Conv: 0);
- pairs: a QuantizeLinear feeds only DequantizeLinear nodes, with the same scale and zero point; a
  DequantizeLinear reads a QuantizeLinear or a constant (the quantized weight);
- nothing index-valued or boolean is quantized, and no dequantized value decides a selection (TopK, ArgMax,
  ArgMin, comparisons): distinct integers or near-equal scores rounding to the same int8 change which tokens a
  pruned model keeps.

:func:`qdq_findings` returns ``(node, op_type, reason)`` tuples; ``check.py`` wraps them as its ``Finding``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .model_info import elem_types

QDQ = ("QuantizeLinear", "DequantizeLinear")
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
_SELECTING = {"TopK", "ArgMax", "ArgMin", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}
_INDEX_OPS = {"ArgMax", "ArgMin", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or",
              "Xor", "NonZero", "Range", "OneHot", "Shape", "Size"}
_VIEW_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Identity", "Expand", "Concat"}


ALLOWED = {"8.5": {TensorProto.INT8}, "8.6": {TensorProto.INT8},
           "10": {TensorProto.INT8, TensorProto.FLOAT8E4M3FN}, "11": {TensorProto.INT8, TensorProto.FLOAT8E4M3FN}}


def qdq_findings(model: onnx.ModelProto, trt: str) -> list[tuple[str, str, str]]:
    """Every Q/DQ node TensorRT ``trt`` would reject or mis-fuse, as ``(node name, op type, reason)``."""
    graph = model.graph
    if not any(n.op_type in QDQ for n in graph.node):
        return []
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    types = elem_types(model)
    family = trt if trt in ALLOWED else trt.split(".")[0]  # "10.3" -> "10"
    allowed = ALLOWED.get(family, {TensorProto.INT8})
    trt = family
    findings = []

    def value(name: str) -> np.ndarray | None:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in consts:
            attr = next((a for a in consts[name].attribute if a.name == "value"), None)
            return numpy_helper.to_array(attr.t) if attr is not None else None
        return None

    for node in graph.node:
        if node.op_type not in QDQ:
            continue
        name = node.name or f"({node.output[0]})"
        reasons = []
        scale = value(node.input[1]) if len(node.input) > 1 else None
        zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        zp = value(zp_name) if zp_name else None
        qtype = (inits[zp_name].data_type if zp_name in inits else types.get(zp_name, 0)) if zp_name \
            else TensorProto.UINT8
        if qtype == TensorProto.INT4 and node.op_type == "DequantizeLinear" and trt in ("10", "11") \
                and value(node.input[0]) is not None:
            pass  # int4 weight-only dequantization: TensorRT 10+
        elif qtype == TensorProto.UINT8 and zp_name:
            zp = None  # an explicit UINT8 zero point: the importer rule (trt_ops) refuses the node, once
        elif qtype not in allowed:
            kind = TensorProto.DataType.Name(qtype) + (" (no zero point given)" if not zp_name else "")
            reasons.append(f"quantized type {kind}; TensorRT {trt} takes "
                           f"{' or '.join(TensorProto.DataType.Name(t) for t in sorted(allowed))}")
        if zp_name and zp is None and qtype != TensorProto.UINT8:
            reasons.append("zero point is not a build-time constant")
        elif zp is not None and np.any(zp.astype(np.float64) != 0):
            reasons.append("zero point is not 0 (TensorRT quantizes symmetrically)")
        if scale is None:
            reasons.append("scale is not a build-time constant")
        elif np.any(scale <= 0):
            reasons.append("scale is not positive")
        if scale is not None and scale.size > 1:
            reasons += _axis_reasons(node, scale, _weight_of(node, producer, value), consumers, inits)
        if node.op_type == "QuantizeLinear":
            reasons += _quantize_reasons(node, consumers, types, producer, value)
        else:
            src = producer.get(node.input[0])
            if value(node.input[0]) is None and (src is None or src.op_type != "QuantizeLinear"):
                reasons.append("dequantizes a tensor that no QuantizeLinear produced (TensorRT needs Q/DQ pairs)")
            for c in consumers.get(node.output[0], []):
                if c.op_type in _SELECTING:
                    reasons.append(f"feeds {c.op_type} {c.name or c.output[0]}: a quantized value decides a "
                                   "selection (keep the merge path in float)")
        findings += [(name, node.op_type, r) for r in reasons]
    return findings


def _quantize_reasons(node, consumers, types, producer, value) -> list[str]:
    reasons = []
    users = consumers.get(node.output[0], [])
    others = sorted({c.op_type for c in users if c.op_type != "DequantizeLinear"})
    if others:
        reasons.append(f"feeds {', '.join(others)}: a QuantizeLinear must feed DequantizeLinear only")
    for dq in (c for c in users if c.op_type == "DequantizeLinear"):
        same = all(_same(value(a), value(b)) for a, b in zip(node.input[1:3], dq.input[1:3]))
        if not same or len(node.input[1:3]) != len(dq.input[1:3]):
            reasons.append(f"its DequantizeLinear {dq.name or dq.output[0]} uses another scale or zero point")
    dtype = types.get(node.input[0], 0)
    if dtype and dtype not in _FLOATS:
        reasons.append(f"quantizes a {TensorProto.DataType.Name(dtype)} tensor (index or boolean values)")
    elif _from_index(node.input[0], producer, types):
        reasons.append("quantizes values computed from indices or booleans (a selection path)")
    return reasons


def _same(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and bool(np.all(a == b))


def _from_index(name: str, producer, types, depth: int = 8) -> bool:
    """Whether ``name`` is, through view ops and Casts, an index or boolean tensor turned into float."""
    for _ in range(depth):
        node = producer.get(name)
        if node is None:
            return False
        if node.op_type in _INDEX_OPS or (node.op_type == "TopK" and name == node.output[1]):
            return True
        if node.op_type == "Cast":
            src = types.get(node.input[0], 0)
            if src and src not in _FLOATS:
                return True
        elif node.op_type not in _VIEW_OPS:
            return False
        name = node.input[0]
    return False


def _weight_of(node, producer, value) -> str | None:
    """The constant weight a Q/DQ node quantizes (directly, or through the Q of a Q/DQ pair), else None."""
    if value(node.input[0]) is not None:
        return node.input[0]
    src = producer.get(node.input[0])
    if node.op_type == "DequantizeLinear" and src is not None and src.op_type == "QuantizeLinear" \
            and value(src.input[0]) is not None:
        return src.input[0]
    return None


def _axis_reasons(node, scale, weight_name: str | None, consumers, inits) -> list[str]:
    axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim != 1:
        return [f"scale of shape {list(scale.shape)}; per-channel scales must be 1-D"]
    if weight_name is None:
        return ["per-channel scale on an activation; TensorRT quantizes activations per tensor"]
    weight = inits.get(weight_name)
    dims = list(weight.dims) if weight is not None else []
    rank = len(dims)
    axis = axis + rank if axis < 0 else axis
    reasons = []
    if dims and (axis >= rank or dims[axis] != scale.size):
        reasons.append(f"{scale.size} scales along axis {axis} of a weight of shape {dims}")
    for c in consumers.get(node.output[0], []):
        want = _output_axis(c, node.output[0], rank)
        if want is not None and want != axis:
            reasons.append(f"per-channel axis {axis}, but the output channels of {c.op_type} "
                           f"{c.name or c.output[0]} are on axis {want}")
    return reasons


def _output_axis(consumer, weight: str, rank: int) -> int | None:
    """The output-channel axis of ``weight`` for its consumer, or None when the rule does not apply."""
    if consumer.op_type == "MatMul" and len(consumer.input) > 1 and consumer.input[1] == weight:
        return rank - 1
    if consumer.op_type == "Gemm" and len(consumer.input) > 1 and consumer.input[1] == weight:
        trans = next((onnx.helper.get_attribute_value(a) for a in consumer.attribute if a.name == "transB"), 0)
        return 0 if trans else 1
    if consumer.op_type in ("Conv", "ConvTranspose") and consumer.input[1] == weight:
        return 0 if consumer.op_type == "Conv" else 1
    return None
