"""Precision: what an fp16 TensorRT build needs from the ONNX, for :func:`tdm_edge.lint.check.check_model` and the
export's metadata. Device side: onnx and the standard library only.

There are two ways to an fp16 engine, and the lint knows which one a model is on:

- **fp16 ONNX** (``tdm-edge export --precision fp16``): the graph's own types decide. TensorRT 11 builds only this
  way (strongly typed networks, no FP16 builder flag); 10.x can (``STRONGLY_TYPED``); 8.5/8.6 take the types as
  hints under the FP16 flag. Token selection and LayerNorms must be fp32 in the graph itself, by Casts.
- **builder flag** (an fp32 ONNX built with ``BuilderFlag.FP16``, 8.5 to 10.x; deprecated from 10.12): TensorRT
  picks fp16 kernels layer by layer; the layers that must stay fp32 are pinned by name, from the metadata's
  ``fp32_layers`` (:func:`fp32_layers`, written by the export).

The intent (which precision the user builds) comes from ``check --precision``, else from the export's metadata
(``"precision"``), else it is the graph's own. Findings (:func:`precision_findings`):

- fp16 intent, fp32 graph, TensorRT 11: it builds an fp32 engine (11 builds in the ONNX's own types);
  fp32 intent, fp16 graph, TensorRT 11: it builds an fp16 engine;
- a TopK/ArgMax/ArgMin on FLOAT16 scores, or on scores computed in fp16 and cast up just before it (through
  shape-only ops): near-equal scores round together and the kept tokens change;
- a decomposed LayerNorm (ReduceMean, Pow, ...) computed in FLOAT16: its variance overflows when the residual
  stream exceeds 256 (TensorRT's own build warning);
- fp16 intent on a weakly typed build (8.5 to 10.x) of an fp32 graph: a decomposed LayerNorm that the metadata's
  ``fp32_layers`` does not pin would run in fp16.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

import onnx
from onnx import TensorProto

from ..metadata import METADATA_KEY
from .model_info import elem_types

FP32, FP16 = "fp32", "fp16"
PRECISIONS = (FP32, FP16)
SELECTION_OPS = ("TopK", "ArgMax", "ArgMin")
# ops that move or reshape values without computing: a Cast seen through them still feeds the selection directly
_VIEW_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Identity", "Gather", "Expand",
             "Concat", "Split"}

Found = Tuple[str, str, str]  # (node, op_type, reason); check.py wraps them as Finding(..., PRECISION)


def graph_precision(model: onnx.ModelProto) -> str:
    """``"fp16"`` when the graph holds fp16 weights or casts to fp16, else ``"fp32"``."""
    graph = model.graph
    if any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer):
        return FP16
    if any(n.op_type == "Cast" and _to(n) == TensorProto.FLOAT16 for n in graph.node):
        return FP16
    return FP32


def metadata_of(model: onnx.ModelProto) -> dict:
    """The export's ``tdm_edge`` metadata, ``{}`` when there is none or it does not parse."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                value = json.loads(prop.value)
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def intended_precision(model: onnx.ModelProto, precision: Optional[str] = None) -> str:
    """What the build is meant to be: ``precision`` if given, else the metadata's, else the graph's own."""
    if precision is not None:
        return precision
    recorded = metadata_of(model).get("precision")
    return recorded if recorded in PRECISIONS else graph_precision(model)


def _to(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), 0)


def _consumers(graph: onnx.GraphProto) -> Dict[str, List[onnx.NodeProto]]:
    users: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def layer_norms(graph: onnx.GraphProto) -> List[List[onnx.NodeProto]]:
    """Every LayerNorm in ``graph``, as its nodes: ``[LayerNormalization]``, or the decomposed form PyTorch writes
    (``ReduceMean(x) -> Sub -> Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div``, the Sub also feeding the Div) with
    the affine ``Mul``/``Add`` by constants that directly follow it."""
    users = _consumers(graph)
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                       for o in n.output}

    def only(tensor: str, *ops: str) -> Optional[onnx.NodeProto]:
        found = users.get(tensor, [])
        return found[0] if len(found) == 1 and found[0].op_type in ops else None

    norms = []
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            norms.append([node])
        if node.op_type != "ReduceMean" or not node.output:
            continue
        sub = only(node.output[0], "Sub")
        pow_ = sub and next((n for n in users.get(sub.output[0], []) if n.op_type == "Pow"), None)
        mean2 = pow_ and only(pow_.output[0], "ReduceMean")
        add = mean2 and only(mean2.output[0], "Add")
        sqrt = add and only(add.output[0], "Sqrt")
        last = sqrt and only(sqrt.output[0], "Div")
        if last is None or sub.output[0] not in last.input or sub.input[0] != node.input[0]:
            continue
        group = [node, sub, pow_, mean2, add, sqrt, last]
        while True:  # the affine part: Mul by the weight, Add of the bias
            nxt = only(last.output[0], "Mul", "Add")
            if nxt is None or not set(nxt.input) & constants:
                break
            group.append(nxt)
            last = nxt
        norms.append(group)
    return norms


def fp32_layers(model: onnx.ModelProto) -> Dict[str, List[str]]:
    """The nodes whose TensorRT layers stay fp32 when ``model`` is built with the FP16 builder flag.

    ``{"layer_norm": [...], "selection": [...]}``, node names in graph order (the ONNX parser names each layer
    after its node). LayerNorms: the nodes of :func:`layer_norms` that compute in fp32. Selection: for an fp32
    graph the selection ops themselves (TopK, ArgMax, ArgMin: their scores are computed in fp16 under the flag);
    for an fp16 graph every node besides the LayerNorms that computes in fp32 between the edge Casts, which is the
    whole selection path as the export cast it.
    """
    graph = model.graph
    norms = [n for group in layer_norms(graph) for n in group]
    if graph_precision(model) == FP32:
        return {"layer_norm": [n.name for n in norms if n.name],
                "selection": [n.name for n in graph.node if n.op_type in SELECTION_OPS and n.name]}
    types = elem_types(model)
    inputs = {v.name for v in graph.input}
    outputs = {v.name for v in graph.output}
    norm_names = {n.name for n in norms if types.get(n.output[0]) == TensorProto.FLOAT}
    norm_in = {i for n in norms if n.name in norm_names for i in n.input}
    norm_out = {o for n in norms if n.name in norm_names for o in n.output}
    selection = []
    for node in graph.node:
        if not node.name or node.name in norm_names or node.op_type == "Constant":
            continue
        if node.op_type == "Cast" and (set(node.input) & inputs or set(node.output) & outputs or
                                       set(node.output) & norm_in or set(node.input) & norm_out):
            continue  # the edge Casts, and those around a LayerNorm
        if node.op_type in SELECTION_OPS or any(types.get(o) == TensorProto.FLOAT for o in node.output):
            selection.append(node.name)
    return {"layer_norm": [n.name for n in graph.node if n.name in norm_names], "selection": selection}


def _name(node: onnx.NodeProto) -> str:
    return node.name or f"({next((o for o in node.output if o), '?')})"


def _upcast_source(graph_producers: Dict[str, onnx.NodeProto], tensor: str,
                   types: Dict[str, int]) -> Optional[onnx.NodeProto]:
    """The Cast from FLOAT16 to FLOAT that ``tensor`` comes straight out of (through view ops), or None."""
    seen = 0
    node = graph_producers.get(tensor)
    while node is not None and node.op_type in _VIEW_OPS and seen < 32:
        node, seen = graph_producers.get(node.input[0]) if node.input else None, seen + 1
    if node is not None and node.op_type == "Cast" and _to(node) == TensorProto.FLOAT:
        if types.get(node.input[0]) == TensorProto.FLOAT16:
            return node
    return None


def precision_findings(model: onnx.ModelProto, trt_first: Tuple[int, int], trt_name: str,
                       precision: Optional[str] = None) -> List[Found]:
    """Precision problems of ``model`` for a TensorRT target (its first release and name), see the module doc.

    ``precision``: the precision the user will build (``check --precision``); None = the metadata's, else the
    graph's own.
    """
    graph = model.graph
    own = graph_precision(model)
    intent = intended_precision(model, precision)
    label = graph.name or "model"
    strongly_typed = trt_first[0] >= 11
    found: List[Found] = []
    if strongly_typed and intent != own:
        found.append((label, "precision", f"meant for {intent} but the graph computes in {own}: TensorRT "
                      f"{trt_name} builds strongly typed networks in the ONNX's own types (no FP16 builder flag), "
                      f"so this builds an {own} engine; export with --precision {intent}"))
    if own == FP32 and intent == FP32:
        return found
    types = elem_types(model)
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type not in SELECTION_OPS or not node.input:
            continue
        if types.get(node.input[0]) == TensorProto.FLOAT16:
            found.append((_name(node), node.op_type, f"selects on FLOAT16 scores ({node.input[0]}): near-equal "
                          "scores round to the same fp16 value and the kept tokens change; compute the scores in "
                          "fp32 from Casts of their inputs (tdm-edge export --precision fp16 does)"))
            continue
        cast = _upcast_source(producers, node.input[0], types)
        if cast is not None:
            found.append((_name(node), node.op_type, f"selects on scores computed in fp16 and cast to fp32 only "
                          f"for the selection ({_name(cast)}): cast the inputs of the scores (tokens, q and k), "
                          "not the scores"))
    pinned = set(metadata_of(model).get("fp32_layers", {}).get("layer_norm", []))
    for group in layer_norms(graph):
        head = group[0]
        if head.op_type == "LayerNormalization":
            continue  # TensorRT >= 8.6 imports it as one normalization layer (8.5: the importer finding)
        pow_ = group[2]
        if types.get(pow_.input[0]) == TensorProto.FLOAT16:
            found.append((_name(head), head.op_type, f"decomposed LayerNorm computed in FLOAT16 ({_name(pow_)}): "
                          "its variance overflows fp16 once |x| exceeds 256; compute it in fp32 between Casts "
                          "(tdm-edge export --precision fp16 does)"))
        elif own == FP32 and intent == FP16 and not strongly_typed and not {n.name for n in group} <= pinned:
            found.append((_name(head), head.op_type, "decomposed LayerNorm in an fp32 graph built with the FP16 "
                          f"builder flag: TensorRT {trt_name} runs it in fp16 unless its layers are pinned to "
                          "fp32; list them in the metadata's fp32_layers (tdm-edge export does) or export "
                          "--precision fp16"))
    return found
