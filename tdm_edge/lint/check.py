"""Lint an ONNX model for the TensorRT ONNX parser of one TensorRT release, without TensorRT.

:func:`check_model` returns one :class:`Finding` per problem (an empty list means clean). The driver here checks
the model as a whole (opset range, local functions, strict shape inference), picks the importer of every node as
the parser does (by op type alone, whatever the domain; an op type with no importer is looked up as a plugin) and
reports shapes that depend on tensor values; everything else is a *rule*:

    rule(info: ModelInfo, node: onnx.NodeProto, trt: Target) -> Iterable[Finding]

called for every top-level node (plugin nodes included; :func:`has_importer` tells whether a built-in importer
takes the node, and :func:`imported_only` wraps a rule to see only those). The built-in rules are in
:mod:`tdm_edge.lint.trt_rules`. Another module adds its own by listing them in a module-level ``RULES`` and its
module name in :data:`RULE_MODULES` (loaded on first use, like ``cli.STAGE_COMMANDS``), or per call with
``check_model(..., extra_rules=[...])``. Tables and sources: :mod:`tdm_edge.lint.trt_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from importlib import import_module
from pathlib import Path
from typing import Callable, Iterable

import onnx
from google.protobuf.message import DecodeError
from onnx import inliner

from . import trt_ops
from .check_qdq import qdq_findings
from .precision import PRECISIONS, precision_findings
from .model_info import DEFAULT_DOMAINS, ModelInfo, attr, node_name, skeleton_model
from ..errors import UsageError, first_line

TRT_VERSIONS = trt_ops.TRT_VERSIONS

# Finding kinds: what the user has to do about it.
UNSUPPORTED = "unsupported"  # the parser (or the builder) refuses it: change the graph
PLUGIN = "plugin"  # no importer: the parser looks for a plugin of that name, which must be loaded
DOMAIN = "domain"  # a custom-domain node that the parser imports as the ONNX op of the same name
MISREAD = "misread"  # imported, but computes something else than ONNX says
SHAPE = "shape"  # an output shape that depends on tensor values
MODEL = "model"  # model-wide: opset, shape inference, graph inputs
PRECISION = "precision"  # computes in the wrong precision for the build meant (precision.py)

Rule = Callable[[ModelInfo, onnx.NodeProto, trt_ops.Target], Iterable["Finding"]]
# Modules whose ``RULES`` list is applied to every node, imported on first use. Add yours (one line).
RULE_MODULES: list[str] = ["tdm_edge.lint.trt_rules", "tdm_edge.lint.plugin_check"]


@dataclass(frozen=True)
class Finding:
    """One reason the TensorRT parser would reject (or silently misread) one node."""

    node: str  # the node's name, or "(first output name)" when it has none; the model's name for model-wide issues
    op_type: str
    reason: str
    kind: str = UNSUPPORTED

    def __str__(self) -> str:
        return f"{self.node} [{self.op_type}]: {self.reason}"


def finding(node: onnx.NodeProto, reason: str, kind: str = UNSUPPORTED) -> Finding:
    """A :class:`Finding` about ``node``."""
    return Finding(node_name(node), node.op_type, reason, kind)


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
    target(trt)
    return check_model(load_model(path), trt)


def target(trt: str) -> trt_ops.Target:
    """``trt`` parsed (:func:`tdm_edge.lint.trt_ops.parse_target`); an unknown version is a UsageError."""
    try:
        return trt_ops.parse_target(trt)
    except ValueError as err:
        raise UsageError(str(err)) from None


def load_rules() -> list[Rule]:
    """The rules of every module in :data:`RULE_MODULES`, in order."""
    return [rule for name in RULE_MODULES for rule in import_module(name).RULES]


def check_model(model: onnx.ModelProto, trt: str = "10", extra_rules: Iterable[Rule] = (),
                precision: str | None = None) -> list[Finding]:
    """Everything in ``model`` that the TensorRT ``trt`` ONNX parser would not import as meant; ``[]`` = clean.

    Args:
        model: the ONNX model (not modified).
        trt: a TensorRT release or family, see :func:`tdm_edge.lint.trt_ops.parse_target` ("10" = every 10.x).
        extra_rules: rules applied after those of :data:`RULE_MODULES`.
        precision: the precision the engine is meant to have ("fp32" or "fp16"); None = the export metadata's
            ``precision``, else the graph's own (:mod:`tdm_edge.lint.precision`).
    Returns:
        Findings in graph order, model-wide ones (opset, shape inference) first.
    """
    t = target(trt)
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    findings: list[Finding] = []
    label = model.graph.name or "model"
    versions = [op.version for op in model.opset_import if op.domain in DEFAULT_DOMAINS]
    opset = max(versions) if versions else None
    lo, hi = trt_ops.opset_range(t.first)
    if opset is None:
        findings.append(Finding(label, "opset", "the model imports no default-domain (ai.onnx) opset", MODEL))
        opset = hi
    elif opset > hi or (lo is not None and opset < lo):
        span = f"{lo} to {hi}" if lo is not None else f"up to {hi}"
        findings.append(Finding(label, "opset", f"opset {opset}; the TensorRT {t.name} parser supports opset "
                                f"{span}", MODEL))
    if model.functions:
        if t.trt8:  # local functions are imported from TensorRT 9.0 on (onnx-tensorrt Changelog 9.0 EA)
            local = {(f.domain, f.name) for f in model.functions}
            findings += [finding(n, f"calls an ONNX local function; TensorRT {t.name} cannot import local "
                                 "functions (inline them first)") for n in model.graph.node
                         if (n.domain, n.op_type) in local]
        model = inliner.inline_local_functions(model)
    error = _strict_inference_error(model)
    if error:
        findings.append(Finding(label, "shape-inference", f"strict ONNX shape inference failed: {error}", MODEL))
    info = ModelInfo(model, opset, t)
    static = ModelInfo(model, opset, t, specialize=1) if info.dynamic else info
    qdq = [Finding(*f) for f in qdq_findings(model, t.name)]  # explicit-quantization rules (check_qdq.py)
    fp16 = [Finding(*f, PRECISION) for f in precision_findings(model, t.first, t.name, precision)]  # precision.py
    return findings + _check_graph(info, static, [*load_rules(), *extra_rules]) + qdq + fp16


def _strict_inference_error(model: onnx.ModelProto) -> str:
    """Strict shape inference with data propagation: the first line of its error, or "" when it passes."""
    try:
        onnx.shape_inference.infer_shapes(skeleton_model(model, None), check_type=True, strict_mode=True,
                                          data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as err:
        return first_line(err)
    return ""


def _check_graph(info: ModelInfo, static: ModelInfo, rules: list[Rule]) -> list[Finding]:
    """Per-node findings; ``static`` is ``info`` with the dynamic input dims fixed, for the shape rule."""
    graph, findings = info.model.graph, []
    inits = {t.name for t in graph.initializer}
    for vi in graph.input:
        if vi.name not in inits and info.dims(vi.name) is None:
            findings.append(Finding(vi.name, "input", "graph input has no shape (TensorRT needs at least its "
                                    "rank)", MODEL))
    unknown: set[str] = set()  # tensors whose shape is unknown because of an upstream node already reported
    for node in graph.node:
        found = importer_findings(node, info.trt) + _subgraph_findings(node, info.trt)
        found += [f for rule in rules for f in rule(info, node, info.trt)]
        bad = [o for o in node.output if o and o not in static.constants and not static.resolved(o)]
        if bad and not any(i in unknown for i in node.input if i) and not found:
            shapes = ", ".join(f"{o} {_fmt(static.dims(o))}" for o in bad)
            found.append(finding(node, f"output shape not fully inferred ({shapes}): it depends on tensor values, "
                                 "not only on the input shapes", SHAPE))
        unknown.update(bad)
        findings += found
    return findings


def _fmt(dims: list | None) -> str:
    return "rank unknown" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def importer_findings(node: onnx.NodeProto, trt: trt_ops.Target) -> list[Finding]:
    """What is wrong with how the parser dispatches ``node`` (ModelImporter.cpp: by ``op_type`` alone, the domain
    is never read; an op type with no importer is looked up as a plugin)."""
    op = node.op_type
    if has_importer(node, trt):
        if node.domain in DEFAULT_DOMAINS:
            return []
        return [finding(node, f"custom-domain op '{node.domain}.{op}' is imported by the TensorRT {trt.name} "
                        f"parser as the ONNX '{op}' op (it ignores the domain; a plugin named '{op}' is never "
                        "consulted): use the default domain if it is that op, another op type if it is a plugin",
                        DOMAIN)]
    since = trt_ops.ADDED_IN_10X.get(op)
    if since and trt.first[0] == 10 and node.domain in DEFAULT_DOMAINS:
        v = f"{since[0]}.{since[1]}"
        return [finding(node, f"not in the TensorRT {trt.name} parser: supported from TensorRT {v} (check with "
                        f"--trt {v} or later if that is what runs)")]
    if node.domain in DEFAULT_DOMAINS and onnx.defs.has(op):
        return [finding(node, f"not supported by the TensorRT {trt.name} ONNX parser (no importer; it would look "
                        f"for a plugin named '{op}')")]
    version, namespace = attr(node, "plugin_version", "1"), attr(node, "plugin_namespace", "")
    where = f"domain '{node.domain}'" if node.domain not in DEFAULT_DOMAINS else "the default domain"
    return [finding(node, f"needs plugin '{op}' (version {version}, namespace '{namespace}') loaded: the TensorRT "
                    f"{trt.name} parser has no importer for '{op}' ({where}) and looks it up in the plugin "
                    "registry", PLUGIN)]


def has_importer(node: onnx.NodeProto, trt: trt_ops.Target) -> bool:
    """Whether a built-in importer of every release in ``trt`` takes ``node`` (else: a plugin lookup)."""
    return node.op_type in trt_ops.supported_ops(trt.first) or node.op_type in trt_ops.trt_named_ops(trt.first)


def imported_only(rule: Rule) -> Rule:
    """``rule`` applied only to nodes that a built-in importer takes (see :func:`has_importer`)."""

    @wraps(rule)
    def wrapped(info: ModelInfo, node: onnx.NodeProto, trt: trt_ops.Target) -> Iterable[Finding]:
        return rule(info, node, trt) if has_importer(node, trt) else ()

    return wrapped


def _subgraph_findings(node: onnx.NodeProto, trt: trt_ops.Target) -> list[Finding]:
    """Importer dispatch inside If/Loop/Scan bodies (the other rules and shapes are not checked there)."""
    out = []
    for a in node.attribute:
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for inner in sub.node:
                inner_findings = importer_findings(inner, trt) + _subgraph_findings(inner, trt)
                out += [Finding(node_name(node), node.op_type, f"subgraph '{a.name}' node {f.node} [{f.op_type}]: "
                                f"{f.reason}", f.kind) for f in inner_findings]
    return out


__all__ = ["Finding", "Rule", "RULE_MODULES", "TRT_VERSIONS", "check_file", "check_model", "finding", "has_importer",
           "imported_only", "importer_findings", "load_model", "load_rules", "target", "UNSUPPORTED", "PLUGIN",
           "DOMAIN", "MISREAD", "SHAPE", "MODEL", "PRECISION"]
