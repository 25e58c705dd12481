"""Lint an ONNX model for the TensorRT ONNX parser of one TensorRT version, without TensorRT.

:func:`check_model` returns one :class:`Finding` per offending node (an empty list means clean):

- the op is not one the parser of that version imports (tables in :mod:`tdm_edge.export.trt_ops`, with their sources),
  or comes from a custom domain (it would need a plugin), or the model's opset is outside the parser's range;
- data-dependent output shapes: NonZero, Unique, NonMaxSuppression, Compress, and any node whose output shape is
  still not fully inferred once constant subgraphs are folded and the dynamic input dimensions (``batch``, ...)
  are fixed to 1, i.e. a shape that depends on tensor values rather than on the input shapes. Only the node where
  a shape first becomes unknown is reported, not everything downstream of it;
- TopK: K must be a constant below 3840 (and, for 8.5, an initializer), the input type one the parser takes and,
  from 10, ``sorted=1``;
- inputs that must be build-time constants: OneHot depth, CumSum axis, and the axes of Slice, Squeeze, Unsqueeze,
  Pad and the Reduce ops, in whichever opset form (attribute or input) the model uses;
- ScatterElements/ScatterND with a ``reduction``: TensorRT 8.x imports them without it and silently computes an
  overwrite; 10 and 11 reject it for ScatterND and honour it for ScatterElements.

"Constant" means an initializer, a Constant node, or anything computed only from those (Cast, Unsqueeze, Concat,
... of constants, evaluated with ``onnx.reference``) and from static dimensions (``Shape`` of a tensor, or the
static entries of a partly dynamic shape picked by Gather/Slice). Shapes come from ``onnx.shape_inference``
(``data_prop=True``), re-run after folding; a failing strict inference is itself reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import inliner, numpy_helper

from . import trt_ops
from .check_qdq import qdq_findings
from ..errors import UsageError, first_line

TRT_VERSIONS = trt_ops.TRT_VERSIONS
_DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_FOLD_ELEMENTS = 1 << 16  # constant values kept for folding; larger constants are "constant, value unknown"
_MAX_ROUNDS = 64  # fold + re-infer rounds; each round can unlock shapes one Shape->Reshape step further
_NOT_FOLDED = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
                         "Multinomial", "If", "Loop", "Scan"})


@dataclass(frozen=True)
class Finding:
    """One reason the TensorRT parser would reject (or silently misread) one node."""

    node: str  # the node's name, or "(first output name)" when it has none; the model's name for model-wide issues
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node} [{self.op_type}]: {self.reason}"


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read a binary ONNX file (external data included); any unreadable or non-ONNX file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        model = onnx.load(str(path), format="protobuf")
    except DecodeError:
        raise UsageError(f"{path}: not an ONNX model (the file does not parse as an ONNX protobuf)") from None
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as err:  # unreadable, external data
        raise UsageError(f"{path}: cannot read the model: {first_line(err)}") from None
    if model.ir_version <= 0 or not model.opset_import or not model.HasField("graph"):
        raise UsageError(f"{path}: not an ONNX model (no IR version, opset or graph)")
    return model


def check_file(path: str | Path, trt: str = "10") -> list[Finding]:
    """:func:`check_model` on a file; a missing, corrupt or non-ONNX file raises :class:`UsageError`."""
    _check_version(trt)
    return check_model(load_model(path), trt)


def check_model(model: onnx.ModelProto, trt: str = "10") -> list[Finding]:
    """Everything in ``model`` that the TensorRT ``trt`` ONNX parser would not import as meant; ``[]`` = clean.

    Args:
        model: the ONNX model (not modified).
        trt: one of :data:`TRT_VERSIONS`.
    Returns:
        Findings in graph order, model-wide ones (opset, shape inference) first.
    """
    _check_version(trt)
    findings: list[Finding] = []
    label = model.graph.name or "model"
    opset = _default_opset(model)
    lo, hi = trt_ops.OPSET_RANGE[trt]
    if opset is None:
        findings.append(Finding(label, "opset", "the model imports no default-domain (ai.onnx) opset"))
        opset = hi
    elif opset > hi or (lo is not None and opset < lo):
        span = f"{lo} to {hi}" if lo is not None else f"up to {hi}"
        findings.append(Finding(label, "opset", f"opset {opset}; the TensorRT {trt} parser supports opset {span}"))
    if model.functions:
        if trt.startswith("8."):  # local functions are imported from TensorRT 9.0 on (onnx-tensorrt Changelog 9.0 EA)
            local = {(f.domain, f.name) for f in model.functions}
            findings += [Finding(_node_name(n), n.op_type, f"calls an ONNX local function; TensorRT {trt} cannot "
                                 "import local functions (inline them first)")
                         for n in model.graph.node if (n.domain, n.op_type) in local]
        model = inliner.inline_local_functions(model)
    error = _infer_shapes(_skeleton(model, None))
    if error:
        findings.append(Finding(label, "shape-inference", f"strict ONNX shape inference failed: {error}"))
    g = _Analysis(model, opset)
    static = _Analysis(model, opset, specialize=1) if g.dynamic else g
    findings += _check_graph(model.graph, g, static, trt, opset)
    findings += [Finding(*f) for f in qdq_findings(model, trt)]  # explicit-quantization rules (check_qdq.py)
    return findings


def _check_version(trt: str) -> None:
    if trt not in TRT_VERSIONS:
        raise UsageError(f"unknown TensorRT version {trt!r}; choose one of {', '.join(TRT_VERSIONS)}")


def _default_opset(model: onnx.ModelProto) -> int | None:
    versions = [op.version for op in model.opset_import if op.domain in _DEFAULT_DOMAINS]
    return max(versions) if versions else None


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or f"({next((o for o in node.output if o), '?')})"


def _infer_shapes(model: onnx.ModelProto) -> str:
    """Strict shape inference with data propagation: the first line of its error, or "" when it passes."""
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as err:
        return first_line(err)
    return ""


class _Analysis:
    """Types, shapes and constant values of a graph's tensors.

    Shape inference alone misses shapes that TensorRT knows at build time (an Expand whose shape is a Where of
    constants, say), so this folds every constant subgraph, turns the folded values into initializers and infers
    again, until nothing new folds. With ``specialize``, every symbolic input dimension is first set to that
    number: whatever is still unknown then depends on tensor values, not on the input shapes.
    """

    def __init__(self, model: onnx.ModelProto, opset: int, specialize: int | None = None):
        graph, self.opset = model.graph, opset
        inits = {t.name for t in graph.initializer}
        dims = [d for vi in graph.input if vi.name not in inits for d in vi.type.tensor_type.shape.dim]
        self.dynamic = any(not d.HasField("dim_value") for d in dims)
        self.symbols = set() if specialize else {d.dim_param for d in dims if d.dim_param}
        self.direct = inits | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        # constants: name -> value, or None for "constant, too large to keep"; partial: Shape outputs, None = dynamic
        self.constants: dict[str, np.ndarray | None] = {
            t.name: numpy_helper.to_array(t) if int(np.prod(t.dims)) <= _MAX_FOLD_ELEMENTS else None
            for t in graph.initializer}
        self.partial: dict[str, list[int | None]] = {}
        skeleton, done = _skeleton(model, specialize), set(inits)
        for _ in range(_MAX_ROUNDS):
            try:
                inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
                inferred = skeleton  # already reported by the strict pass; go on with the declared types
            self.types = {vi.name: vi.type for vi in [*inferred.graph.input, *inferred.graph.value_info,
                                                       *inferred.graph.output]}
            for node in graph.node:
                self._fold(node)
            new = {k: v for k, v in self.constants.items() if v is not None and k not in done}
            if not new:
                break
            done |= set(new)
            skeleton = _materialize(skeleton, new)

    def dims(self, name: str) -> list[int | str | None] | None:
        """The shape of ``name`` (ints, symbols, None for unknown), or None when even the rank is unknown."""
        if self.constants.get(name) is not None:
            return list(self.constants[name].shape)
        t = self.types.get(name)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.tensor_type.shape.dim]

    def resolved(self, name: str) -> bool:
        dims = self.dims(name)
        return dims is not None and all(isinstance(d, int) or d in self.symbols for d in dims)

    def elem_type(self, name: str) -> int:
        t = self.types.get(name)
        return t.tensor_type.elem_type if t is not None and t.HasField("tensor_type") else 0

    def _fold(self, node: onnx.NodeProto) -> None:
        """Record ``node``'s outputs as constants when they are computed only from constants and static dims."""
        ins, outs = [i for i in node.input if i], [o for o in node.output if o]
        if not outs or all(self.constants.get(o) is not None for o in outs) or node.domain not in _DEFAULT_DOMAINS:
            return
        dims = self._shape_dims(node, ins)
        if dims is not None:
            if all(isinstance(d, int) for d in dims.flat):
                self.constants[outs[0]] = dims.astype(np.int64)
                self.partial.pop(outs[0], None)
            elif dims.ndim == 1:
                self.partial[outs[0]] = [d if isinstance(d, int) else None for d in dims]
            return
        if node.op_type in _NOT_FOLDED or not all(i in self.constants for i in ins):
            return
        values = None
        if all(self.constants[i] is not None for i in ins):
            from onnx.reference import ReferenceEvaluator  # imported on first use: it pulls in a lot

            try:
                values = ReferenceEvaluator(node, opsets={"": self.opset}).run(
                    None, {i: self.constants[i] for i in ins})
            except Exception:  # noqa: BLE001 - a kernel the reference cannot run: the value stays unknown
                values = None
        for k, out in enumerate(node.output):
            v = values[k] if values is not None and k < len(values) else None
            if out and self.constants.get(out) is None:
                self.constants[out] = v if v is None or np.size(v) <= _MAX_FOLD_ELEMENTS else None

    def _shape_dims(self, node: onnx.NodeProto, ins: list[str]) -> np.ndarray | None:
        """Shape, and Gather/Slice/Concat of shapes, as an object array of ints and unknowns (None/symbols)."""
        op = node.op_type
        if op == "Shape":
            dims = self.dims(ins[0])
            return None if dims is None else _objects(dims[_attr(node, "start", 0):_attr(node, "end", None)])
        if not ins or ins[0] not in self.partial or self.constants.get(ins[0]) is not None:
            return None
        src, c = self.partial[ins[0]], [self.constants.get(i) for i in ins[1:]]
        if op == "Gather" and _attr(node, "axis", 0) == 0 and c and c[0] is not None:
            return _objects([src[int(i)] for i in np.asarray(c[0]).reshape(-1)]).reshape(np.shape(c[0]))
        if op == "Slice" and len(c) >= 2 and all(x is not None for x in c) and all(
                np.asarray(x).tolist() == want for x, want in zip(c[2:], ([0], [1]))):  # axes [0], steps [1]
            return _objects(src[int(c[0][0]):int(c[1][0])])
        if op == "Concat" and all(i in self.partial or self.constants.get(i) is not None for i in ins):
            return _objects([d for i in ins for d in (np.asarray(self.constants[i]).reshape(-1).tolist()
                                                      if self.constants.get(i) is not None else self.partial[i])])
        return None


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _skeleton(model: onnx.ModelProto, specialize: int | None) -> onnx.ModelProto:
    """A copy for shape inference: large initializers become typed inputs, symbolic input dims ``specialize``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    big = [t for t in m.graph.initializer if int(np.prod(t.dims)) > _MAX_FOLD_ELEMENTS]
    for t in big:
        m.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    keep = [t for t in m.graph.initializer if int(np.prod(t.dims)) <= _MAX_FOLD_ELEMENTS]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    if specialize:
        for vi in m.graph.input:
            for d in vi.type.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    d.dim_value = specialize
    return m


def _materialize(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` with ``values`` as initializers and the nodes that computed only those removed."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = [n for n in m.graph.node if not all(o in values for o in n.output if o)]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    del m.graph.value_info[:]
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name) for name, v in values.items())
    return m


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _check_graph(graph: onnx.GraphProto, g: _Analysis, static: _Analysis, trt: str, opset: int) -> list[Finding]:
    """Per-node findings; ``static`` is ``g`` with the dynamic input dims fixed, for the shape rule."""
    findings: list[Finding] = []
    inits = {t.name for t in graph.initializer}
    for vi in graph.input:
        if vi.name not in inits and g.dims(vi.name) is None:
            findings.append(Finding(vi.name, "input", "graph input has no shape (TensorRT needs at least its rank)"))
    unknown: set[str] = set()  # tensors whose shape is unknown because of an upstream node already reported
    for node in graph.node:
        reasons = _node_reasons(node, g, trt, opset) + _subgraph_reasons(node, trt)
        bad = [o for o in node.output if o and o not in static.constants and not static.resolved(o)]
        if bad and not any(i in unknown for i in node.input if i) and not reasons:
            shapes = ", ".join(f"{o} {_fmt(static.dims(o))}" for o in bad)
            reasons.append(f"output shape not fully inferred ({shapes}): it depends on tensor values, not only on "
                           "the input shapes")
        unknown.update(bad)
        findings += [Finding(_node_name(node), node.op_type, r) for r in reasons]
    return findings


def _fmt(dims: list | None) -> str:
    return "rank unknown" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _subgraph_reasons(node: onnx.NodeProto, trt: str) -> list[str]:
    """Operator support inside If/Loop/Scan bodies (shapes there are not checked)."""
    reasons = []
    for a in node.attribute:
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for inner in sub.node:
                why = _op_support(inner, trt)
                if why:
                    reasons.append(f"subgraph '{a.name}' node {_node_name(inner)} [{inner.op_type}]: {why}")
                reasons += [f"subgraph '{a.name}' node {_node_name(inner)}: {r}"
                            for r in _subgraph_reasons(inner, trt)]
    return reasons


def _op_support(node: onnx.NodeProto, trt: str) -> str:
    if node.domain not in _DEFAULT_DOMAINS:
        return f"custom-domain op '{node.domain}.{node.op_type}': the TensorRT {trt} parser needs a plugin for it"
    if node.op_type in trt_ops.SUPPORTED_OPS[trt]:
        return ""
    since = trt_ops.ADDED_IN_10X.get(node.op_type)
    if trt == "10" and since:
        return f"not in the TensorRT 10.0 parser; supported from TensorRT {since}"
    return f"not supported by the TensorRT {trt} ONNX parser"


def _node_reasons(node: onnx.NodeProto, g: _Analysis, trt: str, opset: int) -> list[str]:
    why = _op_support(node, trt)
    if why:
        return [why]
    op, reasons = node.op_type, []
    if op in trt_ops.DATA_DEPENDENT_OPS:
        reasons.append("output shape depends on the input values (data-dependent shape)")
    if op in trt_ops.CONSTANT_INPUTS:
        index, what, since = trt_ops.CONSTANT_INPUTS[op]
        name = node.input[index] if opset >= since and len(node.input) > index else ""
        if name and name not in g.constants:
            reasons.append(f"input '{what}' ({name}) is not a build-time constant")
        elif name and op == "TopK" and trt == "8.5" and name not in g.direct:
            reasons.append(f"input 'K' ({name}) is computed from constants; TensorRT 8.5 needs an initializer "
                           "(constant-fold the model first)")
    if op == "TopK":
        reasons += _topk_reasons(node, g, trt, opset)
    if op in trt_ops.SCATTER_REDUCTION_UNSUPPORTED[trt]:
        reduction = _attr(node, "reduction", b"none")
        reduction = reduction.decode() if isinstance(reduction, bytes) else str(reduction)
        if reduction != "none":
            reasons.append(f"reduction='{reduction}' is imported without the reduction by TensorRT {trt} "
                           "(it silently overwrites)" if trt.startswith("8.")
                           else f"reduction='{reduction}' is not supported by the TensorRT {trt} parser")
    return reasons


def _topk_reasons(node: onnx.NodeProto, g: _Analysis, trt: str, opset: int) -> list[str]:
    reasons = []
    if opset < 10:
        k = _attr(node, "k")
    else:
        value = g.constants.get(node.input[1]) if len(node.input) > 1 else None
        k = int(np.asarray(value).reshape(-1)[0]) if value is not None and np.size(value) == 1 else None
    if k is not None and k >= trt_ops.TOPK_MAX_K_EXCLUSIVE:
        reasons.append(f"K = {k}; TensorRT supports K < {trt_ops.TOPK_MAX_K_EXCLUSIVE}")
    dtype = g.elem_type(node.input[0])
    if dtype and dtype not in trt_ops.TOPK_TYPES[trt]:
        reasons.append(f"input type {onnx.TensorProto.DataType.Name(dtype)} is not supported by TopK in "
                       f"TensorRT {trt}")
    if trt in ("10", "11") and opset >= 11 and _attr(node, "sorted", 1) != 1:
        reasons.append(f"sorted=0; the TensorRT {trt} parser requires sorted=1")
    return reasons


__all__ = ["Finding", "TRT_VERSIONS", "check_file", "check_model", "load_model"]
