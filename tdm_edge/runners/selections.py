"""Token selections as extra graph outputs, for the live token map (``tdm-edge run --show-tokens``).

The export traces every selection under its name (``tdm_attentive_i``, ``tdm_matched_i``, ... : decoupling and
matching indices, clustering assignment matrices) and ships only the logits; those tensors stay inside the graph.
Declaring them as outputs again costs no computation: the graph already computes them. ``tdm-edge export
--selection-outputs`` writes such a model (needed for a TensorRT engine, whose outputs are fixed when it is built);
for ONNX Runtime the loop adds them in memory to any exported model.

Device side: ``onnx`` only (imported inside :func:`with_outputs`), never torch.
"""

from __future__ import annotations

import json
import re
from typing import List, Optional, Sequence, Tuple

from ..errors import UsageError
from ..metadata import METADATA_KEY

SELECTION_RE = re.compile(r"^tdm_(attentive|inattentive|matched|partners|unmatched|clusters)_\d+$")
_INT64 = 7  # onnx.TensorProto.INT64


def graph_selections(proto) -> List[str]:
    """The selection tensors named in ``proto``'s graph, in node order."""
    names: List[str] = []
    for node in proto.graph.node:
        names.extend(n for n in node.output if SELECTION_RE.match(n) and n not in names)
    return names


def output_selections(proto) -> List[str]:
    """The selection tensors that are already graph outputs."""
    return [o.name for o in proto.graph.output if SELECTION_RE.match(o.name)]


def with_outputs(proto, names: Sequence[str]) -> Tuple[object, List[str]]:
    """A copy of ``proto`` with the tensors ``names`` declared as extra graph outputs (types from shape inference).

    Returns ``(copy, missing)``: ``missing`` lists the names no longer in the graph (e.g. folded away).
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    inferred = onnx.shape_inference.infer_shapes(copy)
    info = {v.name: v for v in inferred.graph.value_info}
    missing = []
    for name in names:
        if name in info:
            copy.graph.output.append(info[name])
        else:
            missing.append(name)
    return copy, missing


def _describe(value) -> dict:
    """``{"name", "dtype", "shape"}`` of a graph output (``None`` for a dynamic dimension)."""
    dims = value.type.tensor_type.shape.dim
    elem = value.type.tensor_type.elem_type
    return {"name": value.name, "dtype": "int64" if elem == _INT64 else "float32",
            "shape": [d.dim_value if d.HasField("dim_value") else None for d in dims]}


def add_selection_outputs(proto, names: Optional[List[str]] = None, metadata: Optional[dict] = None):
    """A copy of ``proto`` with the selection tensors ``names`` (default: all in the graph) as extra outputs.

    ``metadata`` (the model's ``tdm_edge`` JSON, updated in place when given, else read from ``proto``) gets the
    outputs listed in ``onnx.outputs`` and the names in ``selections``; the copy carries it.
    Raises :class:`UsageError` when a name is not in the graph.
    """
    present = output_selections(proto)
    names = [n for n in (graph_selections(proto) if names is None else names) if n not in present]
    copy, missing = with_outputs(proto, names)
    if missing:
        raise UsageError(f"selection tensors not found in the graph: {', '.join(missing)}")
    props = {p.key: p.value for p in copy.metadata_props}
    if metadata is None and METADATA_KEY in props:
        metadata = json.loads(props[METADATA_KEY])
    if metadata is not None:
        by_name = {o.name: o for o in copy.graph.output}
        outputs = metadata.setdefault("onnx", {}).setdefault("outputs", [])
        known = {o["name"] for o in outputs}
        outputs.extend(_describe(by_name[name]) for name in names if name not in known)
        metadata["selections"] = output_selections(copy)
        del copy.metadata_props[:]
        for key, value in props.items():
            copy.metadata_props.add(key=key, value=json.dumps(metadata) if key == METADATA_KEY else value)
        if METADATA_KEY not in props:
            copy.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    return copy
