"""TensorRT's Q/DQ rules in `tdm-edge check` (export/check_qdq.py), on small hand-built graphs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tdm_edge.lint.check import check_model
from tdm_edge.lint.check_qdq import qdq_findings


def _model(nodes, inits, inputs=(("x", TensorProto.FLOAT, [2, 4]),), outputs=(("y", TensorProto.FLOAT, None),)):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _linear(zp=np.int8(0), w_zp=None, axis=1, w_scale=None, act_scale=np.float32(0.1)):
    """x -> Q -> DQ -> MatMul(., DQ(W int8 [4, 3]))."""
    w_scale = np.full(3, 0.05, np.float32) if w_scale is None else w_scale
    w_zp = np.zeros(w_scale.shape, np.int8) if w_zp is None else w_zp
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="wdq", axis=axis),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="mm")]
    inits = {"s": act_scale, "z": zp, "w": np.ones((4, 3), np.int8), "ws": w_scale, "wz": w_zp}
    return _model(nodes, inits)


def test_a_symmetric_int8_pair_and_per_channel_weight_are_clean():
    model = _linear()
    assert qdq_findings(model, "8.5") == [] and check_model(model, "8.5") == []


def test_uint8_zero_point_is_reported_once_by_the_whole_lint():
    reasons = [f.reason for f in check_model(_linear(zp=np.uint8(0), act_scale=np.float32(0.1)), "8.5")
               if f.node == "q"]
    assert len([r for r in reasons if "UINT8" in r]) == 1, reasons


@pytest.mark.parametrize("model, trt, expected", [
    (_linear(zp=np.int8(3)), "10", "zero point is not 0"),
    (_linear(axis=0, w_scale=np.full(4, 0.05, np.float32)), "10", "output channels of MatMul mm are on axis 1"),
    (_linear(act_scale=np.float32(-1.0)), "10", "scale is not positive"),
])
def test_each_rule_names_the_node_and_the_reason(model, trt, expected):
    reasons = [r for _, _, r in qdq_findings(model, trt)]
    assert any(expected in r for r in reasons), reasons


def test_missing_zero_point_means_uint8():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s"], ["y"], name="dq")]
    findings = qdq_findings(_model(nodes, {"s": np.float32(0.1)}), "10")
    assert ("q", "QuantizeLinear", "quantized type UINT8 (no zero point given); TensorRT 10 takes INT8 or "
            "FLOAT8E4M3FN") in findings


def test_quantize_feeding_a_non_dequantize_and_dequantize_without_quantize():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("Cast", ["xq"], ["y"], name="c", to=TensorProto.FLOAT),
             helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("DequantizeLinear", ["xq8", "s", "z"], ["y2"], name="lonely")]
    model = _model(nodes, {"s": np.float32(0.1), "z": np.int8(0)},
                   inputs=(("x", TensorProto.FLOAT, [2, 4]), ("xq8", TensorProto.INT8, [2, 4])),
                   outputs=(("y", TensorProto.FLOAT, None), ("y2", TensorProto.FLOAT, None)))
    found = {(n, r.split(":")[0]) for n, _, r in qdq_findings(model, "10")}
    assert ("q", "feeds Cast") in found
    assert ("lonely", "dequantizes a tensor that no QuantizeLinear produced (TensorRT needs Q/DQ pairs)") in found


def test_index_values_and_selections_must_stay_float():
    """TopK indices cast to float and quantized (the ModelOpt failure), and a dequantized score feeding TopK."""
    k = np.array([2], np.int64)
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk"),
             helper.make_node("Cast", ["i"], ["fi"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("QuantizeLinear", ["fi", "s", "z"], ["iq"], name="q_idx"),
             helper.make_node("DequantizeLinear", ["iq", "s", "z"], ["y"], name="dq_idx"),
             helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_score"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_score"),
             helper.make_node("TopK", ["xd", "k"], ["v2", "i2"], name="topk2")]
    model = _model(nodes, {"s": np.float32(0.1), "z": np.int8(0), "k": k},
                   outputs=(("y", TensorProto.FLOAT, None), ("i2", TensorProto.INT64, None)))
    found = {n: r for n, _, r in qdq_findings(model, "10")}
    assert found["q_idx"] == "quantizes values computed from indices or booleans (a selection path)"
    assert found["dq_score"].startswith("feeds TopK topk2: a quantized value decides a selection")


def test_onnx_runtime_defaults_on_a_bat_graph_break_the_rules(tmp_path):
    """ONNX Runtime's default static quantization (all op types, asymmetric, biases too) on a tiny BAT export: what
    the issue measured (TopK/ArgMax inputs and INT32 biases quantized), each found by the lint."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit

    from ..conftest import tiny_vit

    export_onnx(patch_vit(tiny_vit(), "bat", 0.7), tmp_path / "m.onnx", batch=2, verify=False)

    class Reader:
        def __init__(self):
            self.left = [{"input": np.random.default_rng(i).standard_normal((2, 3, 32, 32), np.float32)}
                         for i in range(2)]

        def get_next(self):
            return self.left.pop() if self.left else None

    quantize_static(str(tmp_path / "m.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    reasons = [r for _, _, r in qdq_findings(onnx.load(tmp_path / "q.onnx"), "10")]
    for expected in ("zero point is not 0", "quantized type INT32", "computed from indices or booleans",
                     "feeds TopK", "feeds ArgMax"):
        assert any(expected in r for r in reasons), expected
