"""``tdm-edge export --merge plugin``: every BAT stage as one ``TdmBatMerge`` plugin node (plugins/tdm_merge).

The graph is traced with each BAT stage routed through the PyTorch op ``tdm_edge::bat_merge``
(:mod:`tdm_edge.reduce.fused`), whose ONNX form is registered here as the plugin node, so the rest of the graph is
exactly what ``--merge ops`` exports. ONNX Runtime cannot run the plugin, so the check here is a rewrite back:
:func:`expand_plugin_nodes` replaces every plugin node by the standard-op graph of the stage its attributes
describe, and that graph must give the PyTorch logits. (The decomposed graph itself is verified by the normal export
before this runs.)
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import torch

from ..errors import UsageError
from ..reduce import fused, patch as patch_module
from ..reduce.patch import AttentionOutput, reduce_tokens as reference_stage
from ..reduce.schedule import Stage
from ..metadata import INPUT_NAME, METADATA_KEY, OUTPUT_NAME
from .layer_norm import decomposed_layer_norm
from .verify import VerificationError
from ..lint.plugin_check import DOMAIN, PLUGIN_NAME, SIZE_ATTRS, is_plugin_node, size_error

MERGE_MODES = ("ops", "plugin")


def stage_from_sizes(sizes: dict[str, int]) -> Stage:
    """The :class:`Stage` a plugin node's INT attributes describe."""
    return fused.stage_from_sizes(**sizes)


def _symbolic(version: str):
    """The ONNX form of ``tdm_edge::bat_merge``: one TdmBatMerge node, sizes as INT attributes."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "v", "i", "i", "i", "i", "i", "i")
    def bat_merge(g, x, importance, n, c, keep, pairs, clusters, knn):
        sizes = dict(zip(SIZE_ATTRS, (n, c, keep, pairs, clusters, knn)))
        out = g.op(f"{DOMAIN}::{PLUGIN_NAME}", x, importance, plugin_version_s=version, plugin_namespace_s="",
                   **{f"{k}_i": v for k, v in sizes.items()})
        return out.setType(x.type().with_sizes([None, stage_from_sizes(sizes).n_out, c]))

    return bat_merge


@contextlib.contextmanager
def plugin_stages(opset: int, version: str = "1"):
    """While active, BAT stages run as ``tdm_edge::bat_merge`` and that op exports as a TdmBatMerge node."""
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    register_custom_op_symbolic(fused.OP_NAME, _symbolic(version), opset)
    try:
        with fused.fused_stages():
            yield
    finally:
        unregister_custom_op_symbolic(fused.OP_NAME, opset)


def trace_plugin_graph(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool,
                       native_layer_norm: bool = False, version: str = "1"):
    """Trace ``model`` with plugin nodes for its BAT stages; returns the ModelProto (not simplified)."""
    import onnx

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic else None
    layer_norm = contextlib.nullcontext() if native_layer_norm or opset < 17 else decomposed_layer_norm(opset)
    buf = io.BytesIO()
    with warnings.catch_warnings(), layer_norm, plugin_stages(opset, version):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True,
                          custom_opsets={DOMAIN: 1})
    proto = onnx.load_from_string(buf.getvalue())
    if not any(op.domain == DOMAIN for op in proto.opset_import):
        proto.opset_import.add(domain=DOMAIN, version=1)
    proto = _simplified(proto)
    declare_plugin_shapes(proto)
    return proto


def declare_plugin_shapes(proto) -> None:
    """Declare every plugin output's type and shape ``[B, n_out, c]`` in ``value_info`` (ONNX cannot infer a custom
    op's shape; with it, shape inference and ``tdm-edge check`` see the whole graph)."""
    import onnx

    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    elem = proto.graph.input[0].type.tensor_type.elem_type
    declared = {v.name for v in proto.graph.value_info}
    for node in plugin_nodes(proto):
        if node.output[0] in declared:
            continue
        sizes = node_sizes(node)
        dims = [batch.dim_param or batch.dim_value, stage_from_sizes(sizes).n_out, sizes["c"]]
        proto.graph.value_info.append(onnx.helper.make_tensor_value_info(node.output[0], elem, dims))


def node_sizes(node) -> dict[str, int]:
    """The INT size attributes of a TdmBatMerge node."""
    attrs = {a.name: a.i for a in node.attribute}
    return {k: int(attrs[k]) for k in SIZE_ATTRS}


class _StageModule(torch.nn.Module):
    def __init__(self, stage: Stage):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        return reference_stage(x, AttentionOutput(None, importance, None), self.stage)


def _stage_graph(sizes: dict[str, int], opset: int):
    """The standard-op graph of one stage: inputs ``x``, ``importance`` (dynamic batch), output ``y``."""
    import onnx

    stage = stage_from_sizes(sizes)
    x = torch.randn(2, sizes["n"], sizes["c"])
    w = torch.rand(2, sizes["n"] - 1)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_StageModule(stage), (x, w), buf, dynamo=False, opset_version=opset,
                          input_names=["x", "importance"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "importance": {0: "b"}, "y": {0: "b"}})
    return _simplified(onnx.load_from_string(buf.getvalue()))


def _simplified(proto):
    """onnx-simplifier's graph, as the normal export ships it (the traced one if it fails)."""
    import onnxsim

    try:
        candidate, ok = onnxsim.simplify(proto, skipped_optimizers=["fuse_layer_norm"])
    except Exception as err:  # as in onnx_export: a failed simplification keeps the valid traced graph
        warnings.warn(f"onnx-simplifier failed ({type(err).__name__}: {err}); keeping the traced graph")
        return proto
    return candidate if ok else proto


def expand_plugin_nodes(proto):
    """A copy of ``proto`` with every TdmBatMerge node replaced by the standard ops of the stage its attributes
    describe (what ONNX Runtime can run); the plugin's domain is dropped from ``opset_import``."""
    import onnx

    opset = next(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes, count = [], 0
    for node in proto.graph.node:
        if not is_plugin_node(node):
            nodes.append(node)
            continue
        sub = onnx.compose.add_prefix(_stage_graph(node_sizes(node), opset), f"tdm_plugin{count}_")
        rename = {f"tdm_plugin{count}_x": node.input[0], f"tdm_plugin{count}_importance": node.input[1],
                  f"tdm_plugin{count}_y": node.output[0]}
        for inner in sub.graph.node:
            inner.input[:] = [rename.get(i, i) for i in inner.input]
            inner.output[:] = [rename.get(o, o) for o in inner.output]
            nodes.append(inner)
        out.graph.initializer.extend(sub.graph.initializer)
        count += 1
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    kept = [op for op in out.opset_import if op.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    return out


def plugin_nodes(proto) -> list:
    return [n for n in proto.graph.node if is_plugin_node(n)]


def to_plugin_graph(model: torch.nn.Module, example: torch.Tensor, decomposed, metadata: dict, *, opset: int,
                    dynamic: bool, native_layer_norm: bool = False, verify: bool = True, atol: float = 1e-4,
                    version: str = "1"):
    """The plugin form of an exported model (``--merge plugin``), checked, with ``metadata`` updated and attached.

    Args:
        model: the patched model (eval mode), with at least one BAT stage.
        example: an input batch the export traced with.
        decomposed: the verified ``--merge ops`` ModelProto (its producer fields are copied).
        metadata: the export metadata; ``metadata["merge"]`` is set here.
        verify: run :func:`expand_plugin_nodes`'s graph in ONNX Runtime against PyTorch (max abs <= ``atol``).
    Raises:
        VerificationError when the expanded graph does not give the PyTorch logits.
    """
    import onnx

    proto = trace_plugin_graph(model, example, opset, dynamic, native_layer_norm, version)
    found = plugin_nodes(proto)
    stages = [s for s in metadata["reduction"]["stages"] if s["method"] == "bat"]
    if len(found) != len(stages):
        raise VerificationError(f"{len(found)} {PLUGIN_NAME} nodes for {len(stages)} BAT stages")
    for node in found:
        if why := size_error(node_sizes(node)):
            raise VerificationError(f"{PLUGIN_NAME} node with invalid sizes: {why}")
    onnx.checker.check_model(proto)
    if verify:
        _verify_expanded(model, proto, example, atol)
    metadata["merge"] = {"mode": "plugin", "plugin": PLUGIN_NAME, "domain": DOMAIN, "plugin_version": version,
                         "stages": [node_sizes(n) for n in found],
                         "library": "plugins/tdm_merge (libtdm_merge_plugin.so)"}
    proto.producer_name, proto.producer_version = decomposed.producer_name, decomposed.producer_version
    del proto.metadata_props[:]
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    return proto


def _verify_expanded(model: torch.nn.Module, proto, example: torch.Tensor, atol: float) -> None:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(expand_plugin_nodes(proto).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: example.numpy()})[0]
    with torch.inference_mode():
        want = model(example).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise VerificationError(f"the plugin graph, its {PLUGIN_NAME} nodes expanded to standard ops, differs from "
                                f"PyTorch by {diff:.3g} (> {atol})")


def check_merge(model: torch.nn.Module, merge: str) -> None:
    """Raise :class:`UsageError` unless ``merge`` is a mode and ``plugin`` has a BAT stage to put in a plugin."""
    if merge not in MERGE_MODES:
        raise UsageError(f"merge must be one of {', '.join(MERGE_MODES)}, got {merge!r}")
    schedule = patch_module.schedule_of(model)
    if merge == "plugin" and not (schedule and any(s.method == "bat" for s in schedule.stages)):
        raise UsageError(f"--merge plugin puts BAT stages into {PLUGIN_NAME} nodes; this model has none "
                         f"(method {schedule.method if schedule else 'none'})")
