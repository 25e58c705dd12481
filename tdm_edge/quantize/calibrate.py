"""INT8 with ONNX Runtime's quantizer: explicit Q/DQ for TensorRT, or the fastest INT8 graph for ONNX Runtime CPU.

What is quantized (both targets): the inputs of the MatMul/Gemm nodes of the linear layers (a constant weight) and of
the two attention products (``MatMul -> Softmax -> MatMul``). Everything else stays float, in particular the whole
merge path of the pruning stages (class attention, TopK, distances, matching, assignment matrices): a pruned model
turns small precision errors there into different token decisions. The class attention is recognised by its
Softmax feeding a ReduceMean rather than a MatMul.

- ``trt``: QDQ format, int8 activations and weights, symmetric (all zero points 0), weights per output channel, no
  output or bias quantization: what TensorRT 8.5 to 11 consume as explicit INT8. On ONNX Runtime CPU this graph is
  *slower* than FP32 (it computes each Q/DQ pair in float); it is a TensorRT artefact.
- ``cpu``: the recipe that ran fastest on ONNX Runtime CPU (``benchmarks/int8_cpu.py``): see :data:`CPU_MODE`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..outputs import write_files
from ..provenance import sha256_file
from .data import ImageSet
from .recipes import Recipe

TARGETS = ("trt", "cpu")
CPU_MODES = ("dynamic", "qoperator", "qdq-u8")
CPU_MODE = "dynamic"  # measured fastest on ONNX Runtime CPU, see benchmarks/results/int8_cpu.md
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger",
                           "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "QGemm",
                           "MatMulIntegerToFloat", "QAttention"})
_PASS_THROUGH = frozenset({"Mul", "Div", "Cast", "Dropout", "Identity"})  # between an attention MatMul and Softmax


@dataclass
class CalibrationReport:
    path: str
    target: str
    mode: str
    quantized_nodes: int
    float_matmuls: int
    calibration: dict | None
    seconds: float

    def summary(self) -> str:
        calib = (f"{self.calibration['count']} images from {self.calibration['source']}"
                 if self.calibration else "no calibration data (dynamic ranges)")
        return (f"wrote {self.path} ({self.target}, {self.mode}): {self.quantized_nodes} MatMul/Gemm nodes in int8, "
                f"{self.float_matmuls} left in float (merge path / excluded); {calib}; {self.seconds:.1f} s")


def is_quantized(proto) -> bool:
    return any(n.op_type in QUANTIZED_OPS for n in proto.graph.node)


def load_fp32(path: str | os.PathLike):
    """``(proto, meta)`` of an FP32 tdm-edge export; not ONNX, no metadata or already quantized: UsageError."""
    from ..lint.check import load_model
    from ..export.onnx_export import METADATA_KEY

    proto = load_model(path)
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise UsageError(f"{path} has no {METADATA_KEY!r} metadata; export it with tdm-edge export first")
    meta = json.loads(props[METADATA_KEY])
    if is_quantized(proto) or "quantization" in meta:
        raise UsageError(f"{path} is already quantized; calibrate the FP32 export")
    return proto, meta


def name_nodes(proto) -> None:
    """Give every unnamed node a unique name (the quantizer selects nodes by name). In place."""
    taken = {n.name for n in proto.graph.node if n.name}
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_tdm{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _links(graph) -> tuple[set[str], dict, dict[str, list]]:
    """Constant tensor names, ``{tensor: producing node}`` and ``{tensor: consuming nodes}`` of a graph."""
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                        for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return constants, producer, consumers


def ranking_inputs(proto) -> list[str]:
    """The linear layers whose outputs the pruning stages rank tokens by (qkv of each reducing block).

    Found from each class attention (a Softmax that feeds no MatMul) by walking up its inputs through
    non-MatMul nodes to the first MatMul/Gemm with a constant weight.
    """
    graph = proto.graph
    constants, producer, consumers = _links(graph)
    found = []
    for soft in (n for n in graph.node if n.op_type == "Softmax"):
        if any(c.op_type == "MatMul" for c in consumers.get(soft.output[0], [])):
            continue  # an attention product, not a class attention
        score = producer.get(soft.input[0])
        while score is not None and score.op_type in _PASS_THROUGH:
            score = producer.get(score.input[0])
        if score is None or score.op_type != "MatMul":
            continue
        todo, seen = list(score.input), set()
        while todo:
            node = producer.get(todo.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in ("MatMul", "Gemm") and any(i in constants for i in node.input[:2]):
                found.append(node.name)
            elif node.op_type not in ("MatMul", "Gemm", "Softmax"):
                todo += [i for i in node.input if i not in constants]
    return list(dict.fromkeys(found))


def select_nodes(proto, attention: bool = True, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names of the MatMul/Gemm nodes to quantize: linear layers (a constant input) and attention products.

    An attention product is a MatMul whose output reaches a Softmax (through scalings) whose output is the input
    of another MatMul; both MatMuls count. The class attention of the pruning stages (Softmax -> ReduceMean) and
    every other MatMul of the merge path have no constant input and no such Softmax, so they stay in float.
    """
    graph = proto.graph
    constants, producer, consumers = _links(graph)
    chosen = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and any(i in constants for i in node.input[:2]):
            chosen.append(node.name)
    if attention:
        for soft in (n for n in graph.node if n.op_type == "Softmax"):
            after = [c for c in consumers.get(soft.output[0], []) if c.op_type == "MatMul"]
            if not after:
                continue
            src = producer.get(soft.input[0])
            while src is not None and src.op_type in _PASS_THROUGH:
                src = producer.get(src.input[0])
            if src is not None and src.op_type == "MatMul":
                chosen += [src.name, *(c.name for c in after)]
    keep = set(chosen) - set(exclude)
    return [n.name for n in graph.node if n.name in keep]


class _Reader:
    """ONNX Runtime's CalibrationDataReader over ``[N, 3, H, W]`` in batches, with a progress bar."""

    def __init__(self, images: np.ndarray, batch: int, input_name: str = "input") -> None:
        from tqdm import tqdm

        starts = range(0, len(images) - batch + 1, batch)
        self._it = iter(tqdm([images[s:s + batch] for s in starts], desc="calibrating", unit="batch"))
        self.input_name = input_name

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}


def _calibrate_method(recipe: Recipe):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[recipe.method]


def quantize_trt(proto, out: str, images: np.ndarray, batch: int, recipe: Recipe, nodes: list[str]) -> None:
    """Static QDQ, int8, symmetric, per-channel weights, MatMul/Gemm inputs only (the issue's measured recipe)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(proto, out, _Reader(images, batch), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=nodes, per_channel=True,
                    reduce_range=False, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=_calibrate_method(recipe),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"],
                                   "DedicatedQDQPair": True, "CalibPercentile": recipe.percentile})


def quantize_cpu(proto, out: str, images: np.ndarray | None, batch: int, recipe: Recipe, nodes: list[str],
                 mode: str = CPU_MODE) -> None:
    """INT8 for ONNX Runtime's CPU kernels; ``mode`` one of :data:`CPU_MODES`.

    ``dynamic``: weights int8 per channel, activations quantized at run time (MatMulInteger kernels; no
    calibration data). ``qoperator``: static QLinearMatMul, uint8 activations. ``qdq-u8``: static QDQ with uint8
    activations and per-tensor weights, which ONNX Runtime fuses into its integer kernels at load time.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode == "dynamic":
        gemm_to_matmul(proto)  # ONNX Runtime's dynamic quantizer has no Gemm
        quantize_dynamic(proto, out, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=nodes,
                         per_channel=True, weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        return
    if images is None:
        raise UsageError(f"--target cpu with mode {mode} needs calibration images")
    quantize_static(proto, out, _Reader(images, batch),
                    quant_format=QuantFormat.QOperator if mode == "qoperator" else QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=nodes,
                    per_channel=mode == "qoperator", activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=_calibrate_method(recipe),
                    extra_options={"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"],
                                   "CalibPercentile": recipe.percentile})


def gemm_to_matmul(proto) -> int:
    """Rewrite each ``Gemm`` (alpha = beta = 1, no transA) with a constant B as ``MatMul`` (+ ``Add``), in place.

    The MatMul keeps the Gemm's name, so node selections stay valid. Returns the number rewritten.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    rewritten, nodes = 0, []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):  # [out, in] -> [in, out], a new initializer (the old one may be shared)
            weight = f"{node.input[1]}_T_{node.name}"
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[node.input[1]]).T.copy(),
                                                             weight))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], weight], [product], name=node.name))
        if has_bias:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]],
                                          name=f"{node.name}_bias"))
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


def model_batch(meta: dict, batch: int | None) -> int:
    """The calibration batch: the model's static batch (``batch`` must agree), or ``batch`` (default 8)."""
    static = meta.get("onnx", {}).get("batch")
    if static is not None:
        if batch is not None and batch != static:
            raise UsageError(f"the model has a static batch of {static}; --batch {batch} does not fit it")
        return static
    return batch or 8


def calibrate(model_path: str | os.PathLike, output: str | os.PathLike, *, target: str = "trt",
              recipe: Recipe, images: ImageSet | None, batch: int | None = None, cpu_mode: str = CPU_MODE,
              proto=None, meta: dict | None = None) -> CalibrationReport:
    """Quantize the FP32 export ``model_path`` to ``output`` (written atomically, with a sidecar ``.json``).

    Args:
        target: ``trt`` (explicit Q/DQ) or ``cpu`` (ONNX Runtime CPU, ``cpu_mode``).
        recipe: what to quantize and how to calibrate.
        images: the preprocessed calibration set (``None`` only for ``cpu`` + ``dynamic``).
        batch: calibration batch for a dynamic-batch model; a static model's batch is its own.
        proto, meta: the already loaded model (:func:`load_fp32`), to skip reading it again.
    """
    import onnx

    from ..export.onnx_export import METADATA_KEY, sidecar_path

    start = time.perf_counter()
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if cpu_mode not in CPU_MODES:
        raise UsageError(f"unknown CPU mode {cpu_mode!r}; choose one of {', '.join(CPU_MODES)}")
    if proto is None or meta is None:
        proto, meta = load_fp32(model_path)
    output = Path(output)
    batch = model_batch(meta, batch)
    needs_data = target == "trt" or cpu_mode != "dynamic"
    if needs_data and (images is None or len(images.images) < batch):
        have = 0 if images is None else len(images.images)
        raise UsageError(f"{have} calibration image(s), fewer than one batch of {batch}")
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    name_nodes(work)
    exclude = (*recipe.exclude_nodes, *(ranking_inputs(work) if recipe.float_ranking else ()))
    dynamic = target == "cpu" and cpu_mode == "dynamic"  # run-time activation ranges: constant weights only
    nodes = select_nodes(work, recipe.quantize_attention and not dynamic, exclude)
    unknown = sorted(set(recipe.exclude_nodes) - {n.name for n in work.graph.node})
    if unknown:
        raise UsageError(f"recipe {recipe.source}: excluded node(s) not in the model: {', '.join(unknown[:3])}")
    used = images.images[:len(images.images) // batch * batch] if needs_data else None
    with tempfile.TemporaryDirectory(prefix="tdm-edge-int8-") as tmp:
        out = os.path.join(tmp, "model.onnx")
        logging.disable(logging.WARNING)  # the quantizer's "consider pre-processing" advice on the root logger
        try:
            with contextlib.redirect_stdout(sys.stderr):  # its calibrators print notes: not our output
                if target == "trt":
                    quantize_trt(work, out, used, batch, recipe, nodes)
                else:
                    quantize_cpu(work, out, used, batch, recipe, nodes, cpu_mode)
        finally:
            logging.disable(logging.NOTSET)
        result = onnx.load(out)
    calib = None
    if needs_data:
        calib = ImageSet(used, images.source, images.names[:len(used)]).record()
    mode = "qdq-int8-symmetric" if target == "trt" else cpu_mode
    meta = dict(meta)
    meta["onnx"] = {**meta.get("onnx", {}), "opset": max(o.version for o in result.opset_import
                                                         if o.domain in ("", "ai.onnx"))}
    meta["quantization"] = {
        "target": target, "mode": mode, "recipe": recipe.as_dict(), "calibration": calib,
        "parent": {"file": os.path.basename(os.fspath(model_path)), "sha256": sha256_file(model_path)},
        "quantized_nodes": nodes, "tool": {"onnxruntime": _ort_version()},
    }
    del result.metadata_props[:]
    result.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    write_files({sidecar_path(output): (json.dumps(meta, indent=1) + "\n").encode(),
                 output: result.SerializeToString()})  # both or neither; the .onnx last marks a complete calibration
    matmuls = sum(n.op_type in ("MatMul", "Gemm") for n in work.graph.node)
    return CalibrationReport(os.fspath(output), target, mode, len(nodes), matmuls - len(nodes), calib,
                             time.perf_counter() - start)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
