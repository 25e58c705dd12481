"""Tiny hand-built ONNX graphs for the lint tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as h
from onnx import numpy_helper


def make_model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    """A model from ``(name, elem_type, shape)`` inputs/outputs and ``{name: array}`` initializers."""
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info(*i) for i in inputs], [h.make_tensor_value_info(*o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), name) for name, v in dict(inits).items()])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset), *domains])


def const(name: str, value) -> onnx.NodeProto:
    """A Constant node named ``c_<name>`` with output ``name``."""
    return h.make_node("Constant", [], [name], name=f"c_{name}", value=numpy_helper.from_array(np.asarray(value)))


def names(findings) -> list[str]:
    return [f.node for f in findings]
