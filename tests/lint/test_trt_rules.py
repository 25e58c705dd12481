"""The importer rules of ``tdm-edge check``: per rule, a tiny graph it must flag and one it must pass."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from tdm_edge import cli
from tdm_edge.lint import check
from tdm_edge.lint.check import DOMAIN, PLUGIN, UNSUPPORTED, Finding, check_model, finding

from .onnx_graphs import const, make_model, names


def unary(op: str, dtype: int, domain: str = "", **attrs):
    domains = [h.make_opsetid(domain, 1)] if domain else []
    return make_model([h.make_node(op, ["x"], ["y"], name="n", domain=domain, **attrs)],
                      [("x", dtype, [2, 3])], [("y", dtype, None)], domains=domains)


# --- input types the importers refuse ----------------------------------------------------------------------------

def test_argmax_on_int64_is_refused_by_85_only():
    model = make_model([h.make_node("ArgMax", ["x"], ["y"], name="argmax", axis=1)],
                       [("x", T.INT64, [2, 3])], [("y", T.INT64, [2, 1])])
    found = check_model(model, "8.5")
    assert names(found) == ["argmax"] and "input 0 (x) is INT64 (INT32 to TensorRT 8)" in found[0].reason
    assert check_model(model, "8.6") == [] and check_model(model, "10") == []
    floats = make_model([h.make_node("ArgMin", ["x"], ["y"], name="argmin", axis=1)],
                        [("x", T.FLOAT, [2, 3])], [("y", T.INT64, [2, 1])])
    assert check_model(floats, "8.5") == []


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
@pytest.mark.parametrize("trt", ["8.5", "8.6", "10.0", "10", "11"])
def test_matmul_and_gemm_on_int32_are_refused(op, trt):
    def model(dtype):
        w = np.ones((3, 3), {T.INT32: np.int32, T.FLOAT: np.float32}[dtype])
        return make_model([h.make_node(op, ["x", "w"], ["y"], name="mm")], [("x", dtype, [2, 3])],
                          [("y", dtype, [2, 3])], {"w": w})

    found = check_model(model(T.INT32), trt)
    assert names(found) == ["mm"] and f"{op} importer rejects" in found[0].reason
    assert check_model(model(T.FLOAT), trt) == []


@pytest.mark.parametrize("trt", ["8.5", "8.6", "10"])
def test_pow_on_int32_is_refused(trt):
    def model(dtype, np_type):
        return make_model([h.make_node("Pow", ["x", "e"], ["y"], name="pow")], [("x", dtype, [2, 3])],
                          [("y", dtype, [2, 3])], {"e": np.array(2, np_type)})

    found = check_model(model(T.INT32, np.int32), trt)
    assert names(found) == ["pow"] and "input 0 (x) is INT32; input 1 (e) is INT32" in found[0].reason
    assert check_model(model(T.FLOAT, np.float32), trt) == []


def test_activations_on_integer_tensors():
    for trt in ("8.5", "8.6", "10.0", "10", "11"):
        found = check_model(unary("Relu", T.INT32), trt)
        assert names(found) == ["n"] and "Relu importer rejects" in found[0].reason, trt
        assert check_model(unary("Relu", T.FLOAT), trt) == [], trt
    # INT64 is INT32 to the 8.x parser; activationHelper does not list INT64 from 10.0 on
    assert names(check_model(unary("Relu", T.INT64), "8.6")) == ["n"]
    assert check_model(unary("Relu", T.INT64), "10") == []


# --- TopK --------------------------------------------------------------------------------------------------------

def topk(dtype=T.FLOAT, **attrs):
    return make_model([h.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=-1, **attrs)],
                      [("x", dtype, [1, 16])], [("v", dtype, [1, 2])], {"k": np.array([2], np.int64)})


def test_topk_sorted_0_is_refused_from_10_1():
    for trt in ("10.1", "10", "11"):  # "10" is every 10.x, so 10.1 and later too
        found = check_model(topk(sorted=0), trt)
        assert names(found) == ["topk"] and "requires sorted=1 from 10.1" in found[0].reason, trt
    for trt in ("8.5", "8.6", "10.0"):
        assert check_model(topk(sorted=0), trt) == [], trt
    assert check_model(topk(sorted=1), "10") == []


def test_topk_on_int64_is_fine_from_86():
    found = check_model(topk(T.INT64), "8.5")
    assert names(found) == ["topk"] and "TopK importer rejects" in found[0].reason
    assert check_model(topk(T.INT64), "8.6") == [] and check_model(topk(T.INT64), "10") == []


# --- importer dispatch: by op type, whatever the domain ----------------------------------------------------------

def test_onnx_op_in_a_custom_domain_is_imported_as_that_op():
    found = check_model(unary("Relu", T.INT32, domain="com.example"), "10")
    assert [(f.node, f.kind) for f in found] == [("n", DOMAIN), ("n", UNSUPPORTED)]
    assert "imported by the TensorRT 10 parser as the ONNX 'Relu' op" in found[0].reason
    assert "Relu importer rejects" in found[1].reason  # the ONNX op's own rules apply to it
    assert check_model(unary("Relu", T.FLOAT), "10") == []


def test_unknown_op_type_needs_a_plugin_in_any_domain():
    custom = unary("MergeTokens", T.FLOAT, domain="tdm", plugin_version="2")
    found = check_model(custom, "8.6")
    assert [(f.node, f.kind) for f in found] == [("n", PLUGIN)]
    assert found[0].reason.startswith("needs plugin 'MergeTokens' (version 2, namespace '') loaded")
    # DeformConv in a custom domain: a plugin lookup before 10.1, the built-in importer from 10.1 on
    deform = make_model([h.make_node("DeformConv", ["x", "w", "off"], ["y"], name="d", domain="mmcv")],
                        [("x", T.FLOAT, [1, 1, 4, 4]), ("off", T.FLOAT, [1, 2, 4, 4])], [("y", T.FLOAT, None)],
                        {"w": np.ones((1, 1, 1, 1), np.float32)}, opset=19, domains=[h.make_opsetid("mmcv", 1)])
    assert [f.kind for f in check_model(deform, "10.0")] == [PLUGIN]
    assert [f.kind for f in check_model(deform, "10.1")] == [DOMAIN]
    # an ONNX op with no importer in the default domain stays "unsupported"
    det = make_model([h.make_node("Det", ["x"], ["y"], name="det")], [("x", T.FLOAT, [3, 3])], [("y", T.FLOAT, [])])
    assert [(f.kind, "no importer" in f.reason) for f in check_model(det, "10")] == [(UNSUPPORTED, True)]


# --- inputs the importer reads out of an initializer or a Constant node ------------------------------------------

def axes_model(op: str, folded: bool, opset: int = 13):
    """``op`` with axes [1] from a Constant node, or from Cast(Constant) (a value computed from constants)."""
    nodes = [const("axes", np.array([1], np.int32 if folded else np.int64))]
    nodes += [h.make_node("Cast", ["axes"], ["axes64"], name="cast", to=T.INT64)] if folded else []
    nodes += [h.make_node(op, ["x", "axes64" if folded else "axes"], ["y"], name="n",
                          **({"keepdims": 1} if op.startswith("Reduce") else {}))]
    shape = [2, 1, 3] if op != "Unsqueeze" else [2, 3]
    return make_model(nodes, [("x", T.FLOAT, shape)], [("y", T.FLOAT, None)], opset=opset)


@pytest.mark.parametrize("op", ["Squeeze", "Unsqueeze", "ReduceSum"])
@pytest.mark.parametrize("trt", ["8.5", "8.6", "10"])
def test_axes_must_be_an_initializer_or_constant_node(op, trt):
    found = check_model(axes_model(op, folded=True), trt)
    assert names(found) == ["n"] and "'axes' (axes64) is computed from constants" in found[0].reason
    assert check_model(axes_model(op, folded=False), trt) == []


def test_pad_axes_input_is_refused_by_trt8():
    model = make_model([h.make_node("Pad", ["x", "pads", "", "axes"], ["y"], name="pad")], [("x", T.FLOAT, [2, 3])],
                       [("y", T.FLOAT, [2, 5])], {"pads": np.array([1, 1], np.int64), "axes": np.array([1])},
                       opset=18)
    assert [f.op_type for f in check_model(model, "8.6")] == ["opset", "Pad"]
    assert check_model(model, "10") == []


# --- the extension hook ------------------------------------------------------------------------------------------

def no_relu(info, node, trt):
    """A rule as another module would write one."""
    if node.op_type == "Relu" and info.elem_type(node.input[0]) == T.FLOAT:
        yield finding(node, f"no Relu on TensorRT {trt.name}", "custom")


def test_extra_rules_and_rule_modules(monkeypatch):
    model = unary("Relu", T.FLOAT)
    assert check_model(model, "10", extra_rules=[no_relu]) == [Finding("n", "Relu", "no Relu on TensorRT 10", "custom")]
    module = types.ModuleType("lint_rules_of_another_stage")
    module.RULES = [no_relu]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(check, "RULE_MODULES", [*check.RULE_MODULES, module.__name__])
    assert [f.kind for f in check_model(model, "8.6")] == ["custom"]


def test_rules_see_plugin_nodes_but_the_built_in_ones_do_not():
    def our_plugin(info, node, trt):  # as the merge-plugin lint would: it must see the plugin node
        if node.op_type == "MergeTokens" and not check.has_importer(node, trt):
            yield finding(node, "needs libtdm_plugins.so", "ours")

    plugin = unary("MergeTokens", T.FLOAT, domain="tdm")
    assert [f.kind for f in check_model(plugin, "10", extra_rules=[our_plugin])] == [PLUGIN, "ours"]
    # Gelu on INT32 in 8.5: no importer there, so only the dispatch finding, not also the activation type rule
    gelu = make_model([h.make_node("Gelu", ["x"], ["y"], name="n")], [("x", T.INT32, [2])], [("y", T.INT32, [2])],
                      opset=20)
    found = check_model(gelu, "8.5")  # (INT32 Gelu is not even valid ONNX: strict inference says so too)
    assert [(f.op_type, f.kind) for f in found] == [("opset", "model"), ("shape-inference", "model"),
                                                    ("Gelu", UNSUPPORTED)]
    assert "no importer" in found[-1].reason
    assert "Gelu importer rejects" in check_model(gelu, "10")[-1].reason  # 10.0 has a Gelu importer


# --- the command line --------------------------------------------------------------------------------------------

def test_cli_plugin_finding_and_minor_version(tmp_path, capsys):
    import onnx

    path = tmp_path / "plugin.onnx"
    onnx.save(unary("MergeTokens", T.FLOAT, domain="tdm"), str(path))
    assert cli.main(["check", str(path), "--trt", "10.3"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("n [MergeTokens]: needs plugin 'MergeTokens'")
    assert lines[-1] == f"{path}: 1 problem(s) for TensorRT 10.3 (1 nodes, 1 need a plugin loaded)"
    with pytest.raises(SystemExit) as exit_:  # argparse's choices: before the model is read
        cli.main(["check", str(path), "--trt", "10.16"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: '10.16'" in err[0]


def test_uint8_quantization_is_refused():
    def q(zero_point):
        return make_model([h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")], [("x", T.FLOAT, [2])],
                          [("y", T.INT8 if zero_point.dtype == np.int8 else T.UINT8, [2])],
                          {"s": np.array(0.1, np.float32), "z": zero_point}, opset=13)

    found = check_model(q(np.array(128, np.uint8)), "10")
    assert names(found) == ["q"] and "input 2 (z) is UINT8" in found[0].reason
    assert check_model(q(np.array(0, np.int8)), "10") == []


def test_dispatch_inside_subgraphs():
    def branch(op, domain=""):
        return h.make_graph([h.make_node(op, ["x"], ["b"], name="inner", domain=domain)], "b", [],
                            [h.make_tensor_value_info("b", T.FLOAT, [2])])

    def model(then_op, domain=""):
        node = h.make_node("If", ["c"], ["y"], name="if", then_branch=branch(then_op, domain),
                           else_branch=branch("Relu"))
        return make_model([node], [("c", T.BOOL, []), ("x", T.FLOAT, [2])], [("y", T.FLOAT, [2])],
                          domains=[h.make_opsetid(domain, 1)] if domain else [])

    found = check_model(model("MergeTokens", "tdm"), "10")
    assert [(f.node, f.kind) for f in found] == [("if", PLUGIN)]
    assert found[0].reason.startswith("subgraph 'then_branch' node inner [MergeTokens]: needs plugin 'MergeTokens'")
    assert check_model(model("Sigmoid"), "10") == []
