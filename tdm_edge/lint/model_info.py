"""What a lint rule knows about a model: tensor types, shapes, constant values, which inputs are weights.

:class:`ModelInfo` is the first argument of every lint rule (``rule(info, node, trt) -> Iterable[Finding]``, see
:mod:`tdm_edge.lint.check`). "Constant" means an initializer, a Constant node, or anything computed only from
those (Cast, Unsqueeze, Concat, ... of constants, evaluated with ``onnx.reference``) and from static dimensions
(``Shape`` of a tensor, or the static entries of a partly dynamic shape picked by Gather/Slice). "Weights" is the
narrower set the TensorRT parser itself holds as weights: initializers and Constant-node outputs only (the parser
folds nothing). Types and shapes come from ``onnx.shape_inference`` (``data_prop=True``), re-run after folding.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from . import trt_ops

DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_FOLD_ELEMENTS = 1 << 16  # constant values kept for folding; larger constants are "constant, value unknown"
_MAX_ROUNDS = 64  # fold + re-infer rounds; each round can unlock shapes one Shape->Reshape step further
_NOT_FOLDED = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
                         "Multinomial", "If", "Loop", "Scan"})


def node_name(node: onnx.NodeProto) -> str:
    """The node's name, or "(first output name)" when it has none."""
    return node.name or f"({next((o for o in node.output if o), '?')})"


def attr(node: onnx.NodeProto, name: str, default=None):
    """The value of attribute ``name`` of ``node`` (strings decoded), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


class ModelInfo:
    """Types, shapes and constant values of a graph's tensors, for one TensorRT target.

    Shape inference alone misses shapes that TensorRT knows at build time (an Expand whose shape is a Where of
    constants, say), so this folds every constant subgraph, turns the folded values into initializers and infers
    again, until nothing new folds. With ``specialize``, every symbolic input dimension is first set to that
    number: whatever is still unknown then depends on tensor values, not on the input shapes.

    Args:
        model: the model (local functions already inlined).
        opset: its default-domain opset.
        trt: the TensorRT target (:func:`tdm_edge.lint.trt_ops.parse_target`).
        specialize: fix symbolic input dimensions to this size.
    """

    def __init__(self, model: onnx.ModelProto, opset: int, trt: trt_ops.Target, specialize: int | None = None):
        graph, self.model, self.opset, self.trt = model.graph, model, opset, trt
        inits = {t.name for t in graph.initializer}
        dims = [d for vi in graph.input if vi.name not in inits for d in vi.type.tensor_type.shape.dim]
        self.dynamic = any(not d.HasField("dim_value") for d in dims)
        self.symbols = set() if specialize else {d.dim_param for d in dims if d.dim_param}
        self.weights = inits | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        # constants: name -> value, or None for "constant, too large to keep"; partial: Shape outputs, None = dynamic
        self.constants: dict[str, np.ndarray | None] = {
            t.name: numpy_helper.to_array(t) if int(np.prod(t.dims)) <= _MAX_FOLD_ELEMENTS else None
            for t in graph.initializer}
        self.partial: dict[str, list[int | None]] = {}
        self.types: dict[str, onnx.TypeProto] = {
            t.name: onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims)) for t in graph.initializer}
        skeleton, done = skeleton_model(model, specialize), set(inits)
        for _ in range(_MAX_ROUNDS):
            try:
                inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
                inferred = skeleton  # reported by the strict pass in check_model; go on with the declared types
            self.types.update({vi.name: vi.type for vi in [*inferred.graph.input, *inferred.graph.value_info,
                                                            *inferred.graph.output]})
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
        """Whether every dimension of ``name`` is a number or an input's symbolic dimension."""
        dims = self.dims(name)
        return dims is not None and all(isinstance(d, int) or d in self.symbols for d in dims)

    def elem_type(self, name: str) -> int:
        """The ONNX element type of ``name`` (a ``TensorProto`` data type number), 0 when unknown."""
        t = self.types.get(name)
        return t.tensor_type.elem_type if t is not None and t.HasField("tensor_type") else 0

    def importer_type(self, name: str, release: trt_ops.Release) -> str:
        """The type name the importers of ``release`` see for ``name`` ("INT32" for INT64 on 8.x), "" if unknown."""
        return trt_ops.importer_type(self.elem_type(name), release)

    def _fold(self, node: onnx.NodeProto) -> None:
        """Record ``node``'s outputs as constants when they are computed only from constants and static dims."""
        ins, outs = [i for i in node.input if i], [o for o in node.output if o]
        if not outs or all(self.constants.get(o) is not None for o in outs) or node.domain not in DEFAULT_DOMAINS:
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
            return None if dims is None else _objects(dims[attr(node, "start", 0):attr(node, "end", None)])
        if not ins or ins[0] not in self.partial or self.constants.get(ins[0]) is not None:
            return None
        src, c = self.partial[ins[0]], [self.constants.get(i) for i in ins[1:]]
        if op == "Gather" and attr(node, "axis", 0) == 0 and c and c[0] is not None:
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


def skeleton_model(model: onnx.ModelProto, specialize: int | None) -> onnx.ModelProto:
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


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can tell (initializers and Constant outputs included)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
        inferred = model
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            types[node.output[0]] = node.attribute[0].t.data_type
    return types
