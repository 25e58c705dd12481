"""What tdm-edge knows about its own TensorRT plugin, ``TdmBatMerge`` (plugins/tdm_merge): the ONNX node's spec and
the lint of such a node for ``tdm-edge check``. onnx-free at import time.

The node: op type ``TdmBatMerge`` in the custom domain :data:`DOMAIN` (declared in ``opset_import``), inputs tokens
``[B, n, c]`` and importance ``[B, n-1]``, output ``[B, 1 + keep - pairs + clusters, c]``, INT attributes
:data:`SIZE_ATTRS`, string attributes ``plugin_version`` and ``plugin_namespace`` (read by TensorRT's ONNX parser to
find the creator). TensorRT parses it only with our plugin library loaded.
"""

from __future__ import annotations

DOMAIN = "tdm_edge"
PLUGIN_NAME = "TdmBatMerge"
PLUGIN_VERSIONS = {"1": "IPluginV2DynamicExt, TensorRT 8.5+", "2": "IPluginV3, TensorRT 10+"}
SIZE_ATTRS = ("n", "c", "keep", "pairs", "clusters", "knn")
LIBRARY = "libtdm_merge_plugin.so"


def is_plugin_node(node) -> bool:
    """Whether an ONNX ``NodeProto`` is a TdmBatMerge node."""
    return node.domain == DOMAIN and node.op_type == PLUGIN_NAME


def size_error(sizes: dict[str, int]) -> str:
    """Why the sizes are not a valid stage (the kernel's validateSizes), or ``""``."""
    n, c, keep, pairs, clusters, knn = (sizes[k] for k in SIZE_ATTRS)
    rest, count_a, count_b = n - 1 - keep, (keep + 1) // 2, keep // 2
    if n < 2 or c < 1:
        return "need n >= 2 tokens and c >= 1 channels"
    if not 1 <= keep <= n - 1:
        return "keep must be in [1, n-1]"
    if not 0 <= pairs <= count_a or (pairs > 0 and count_b < 1):
        return "pairs must be in [0, ceil(keep/2)] and need at least one B token"
    if (clusters != 0) if rest == 0 else not 1 <= clusters <= rest:
        return "clusters must be in [1, n-1-keep] (0 when no token is inattentive)"
    if knn < 1:
        return "knn must be >= 1"
    return ""


def node_reasons(node, trt: str) -> list[str]:
    """Problems of a TdmBatMerge node for TensorRT ``trt`` (attributes, interface version); ``[]`` = fine."""
    attrs = {a.name: a for a in node.attribute}
    reasons = []
    missing = [k for k in SIZE_ATTRS if k not in attrs or attrs[k].type != 2]  # AttributeProto.INT
    if missing:
        reasons.append(f"{PLUGIN_NAME}: INT attribute(s) {', '.join(missing)} missing")
    elif why := size_error({k: attrs[k].i for k in SIZE_ATTRS}):
        reasons.append(f"{PLUGIN_NAME}: invalid sizes: {why}")
    version = attrs["plugin_version"].s.decode() if "plugin_version" in attrs else "1"
    if version not in PLUGIN_VERSIONS:
        reasons.append(f"{PLUGIN_NAME}: plugin_version {version!r} unknown (have {', '.join(PLUGIN_VERSIONS)})")
    elif version == "2" and trt.startswith("8."):
        reasons.append(f"{PLUGIN_NAME} version 2 is an IPluginV3, which TensorRT {trt} cannot load; export "
                       "plugin_version 1")
    if len(node.input) != 2 or len(node.output) != 1:
        reasons.append(f"{PLUGIN_NAME} takes 2 inputs (tokens, importance) and has 1 output")
    return reasons


def op_support(node, trt: str) -> str | None:
    """The check's operator verdict for our plugin: ``None`` when ``node`` is not ours, else ``""`` or a reason."""
    return "; ".join(node_reasons(node, trt)) if is_plugin_node(node) else None


def plugin_notes(model) -> list[str]:
    """One line for ``tdm-edge check`` when the model holds TdmBatMerge nodes: what TensorRT needs to parse them."""
    count = sum(is_plugin_node(n) for n in model.graph.node)
    if not count:
        return []
    return [f"note: {count} {PLUGIN_NAME} node(s), tdm-edge's fused merge plugin: TensorRT parses them only with "
            f"{LIBRARY} loaded (build plugins/tdm_merge; trtexec --dynamicPlugins=PATH on 8.6+, --plugins=PATH on "
            "8.5); see plugins/README.md"]


def with_shape_stand_ins(model):
    """A copy of ``model`` for shape analysis: every valid TdmBatMerge node becomes a Slice of its tokens to
    ``[B, n_out, c]`` (the plugin's output shape), which ONNX shape inference understands; ``model`` itself if there
    are none. The lint still judges the real nodes; only their shapes come from here."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    ours = [n for n in model.graph.node if is_plugin_node(n) and not node_reasons(n, "10")]
    if not ours:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for i, node in enumerate(copy.graph.node):
        if not (is_plugin_node(node) and not node_reasons(node, "10")):
            nodes.append(node)
            continue
        sizes = {a.name: a.i for a in node.attribute}
        n_out = 1 + sizes["keep"] - sizes["pairs"] + sizes["clusters"]
        names = [f"{node.output[0]}__stand_in_{k}" for k in ("starts", "ends", "axes")]
        for name, value in zip(names, ([0], [n_out], [1])):
            copy.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
        nodes.append(onnx.helper.make_node("Slice", [node.input[0], *names], [node.output[0]], name=node.name))
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy
