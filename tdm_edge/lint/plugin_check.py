"""What tdm-edge knows about its own TensorRT plugin, ``TdmBatMerge`` (plugins/tdm_merge): the ONNX node's spec and
the lint rule for such nodes (:data:`RULES`, registered in ``check.RULE_MODULES``).

The node: op type ``TdmBatMerge`` in the custom domain :data:`DOMAIN` (declared in ``opset_import``), inputs tokens
``[B, n, c]`` and importance ``[B, n-1]``, output ``[B, 1 + keep - pairs + clusters, c]``, INT attributes
:data:`SIZE_ATTRS`, string attributes ``plugin_version`` and ``plugin_namespace`` (read by TensorRT's ONNX parser to
find the creator). TensorRT parses it only with our plugin library loaded.
"""

from __future__ import annotations

from typing import Iterator

DOMAIN = "tdm_edge"
PLUGIN_NAME = "TdmBatMerge"
PLUGIN_VERSIONS = {"1": "IPluginV2DynamicExt, TensorRT 8.5+", "2": "IPluginV3, TensorRT 10+"}
SIZE_ATTRS = ("n", "c", "keep", "pairs", "clusters", "knn")
LIBRARY = "libtdm_merge_plugin.so"


def is_plugin_node(node) -> bool:
    """Whether an ONNX ``NodeProto`` is a TdmBatMerge node."""
    return node.domain == DOMAIN and node.op_type == PLUGIN_NAME


MAX_TOKENS, MAX_CHANNELS = 16385, 16384  # batMergeTypes.h kMaxTokens (128 x 128 patches + CLS), kMaxChannels


def size_error(sizes: dict[str, int]) -> str:
    """Why the sizes are not a stage the kernel computes (``validateSizes`` in batMergeTypes.h: the same rules in
    the same order, the same words), or ``""``."""
    n, c, keep, pairs, clusters, knn = (sizes[k] for k in SIZE_ATTRS)
    if n < 3 or c < 1:
        return "need n >= 3 tokens and c >= 1 channels"
    if not 2 <= keep <= n - 2:
        return "keep must be in [2, n-2] (a B token and an inattentive token are needed)"
    if not 0 <= pairs <= (keep + 1) // 2:
        return "pairs must be in [0, ceil(keep/2)]"
    if not 1 <= clusters <= n - 1 - keep:
        return "clusters must be in [1, n-1-keep]"
    if knn < 1:
        return "knn must be >= 1"
    if n > MAX_TOKENS or c > MAX_CHANNELS:
        return f"n must be <= {MAX_TOKENS} tokens and c <= {MAX_CHANNELS} channels"
    return ""


def node_reasons(node, trt8: bool) -> list[str]:
    """Problems of a TdmBatMerge node (attributes, interface version; ``trt8``: for TensorRT 8.x); ``[]`` = fine."""
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
    elif version == "2" and trt8:
        reasons.append(f"{PLUGIN_NAME} version 2 is an IPluginV3, which TensorRT 8 cannot load; export "
                       "plugin_version 1")
    if len(node.input) != 2 or len(node.output) != 1:
        reasons.append(f"{PLUGIN_NAME} takes 2 inputs (tokens, importance) and has 1 output")
    return reasons


def tdm_merge_plugin(info, node, trt) -> Iterator:
    """Lint rule: what a TdmBatMerge node needs (our library loaded) and what is wrong with it, if anything.

    The check driver has already reported the generic "needs plugin" line for the node; this one names the library
    and how to load it, and checks the attributes the kernel reads.
    """
    from .check import PLUGIN, finding

    if not is_plugin_node(node):
        return
    yield finding(node, f"tdm-edge's fused BAT merge plugin: build plugins/tdm_merge and load {LIBRARY} "
                  f"({'trtexec --plugins=PATH' if trt.first == (8, 5) else 'trtexec --dynamicPlugins=PATH'}; "
                  "plugins/README.md)", PLUGIN)
    for reason in node_reasons(node, trt.trt8):
        yield finding(node, reason)


RULES = [tdm_merge_plugin]
