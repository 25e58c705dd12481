"""The lint's precision findings (tdm_edge/lint/precision.py) on small hand-built graphs, and ``check --precision``."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from tdm_edge import cli
from tdm_edge.lint.check import PRECISION, Finding, check_model
from tdm_edge.lint.precision import fp32_layers, graph_precision, intended_precision, layer_norms
from tdm_edge.metadata import METADATA_KEY

from .onnx_graphs import const, make_model

STRONGLY_TYPED = ("main_graph [precision]: meant for fp16 but the graph computes in fp32: TensorRT 11 builds strongly "
                  "typed networks in the ONNX's own types (no FP16 builder flag), so this builds an fp32 engine; "
                  "export with --precision fp16")


def layer_norm(x: str, out: str, prefix: str, dtype=np.float32) -> tuple[list, dict]:
    """The decomposed LayerNorm PyTorch writes (over the last axis), with its affine Mul/Add: nodes, initializers."""
    p = prefix
    nodes = [h.make_node("ReduceMean", [x], [f"{p}m"], name=f"{p}ReduceMean", axes=[-1]),
             h.make_node("Sub", [x, f"{p}m"], [f"{p}d"], name=f"{p}Sub"),
             h.make_node("Pow", [f"{p}d", f"{p}two"], [f"{p}d2"], name=f"{p}Pow"),
             h.make_node("ReduceMean", [f"{p}d2"], [f"{p}v"], name=f"{p}ReduceMean_1", axes=[-1]),
             h.make_node("Add", [f"{p}v", f"{p}eps"], [f"{p}ve"], name=f"{p}Add"),
             h.make_node("Sqrt", [f"{p}ve"], [f"{p}s"], name=f"{p}Sqrt"),
             h.make_node("Div", [f"{p}d", f"{p}s"], [f"{p}n"], name=f"{p}Div"),
             h.make_node("Mul", [f"{p}n", f"{p}w"], [f"{p}nw"], name=f"{p}Mul"),
             h.make_node("Add", [f"{p}nw", f"{p}b"], [out], name=f"{p}Add_1")]
    inits = {f"{p}two": np.array(2.0, dtype), f"{p}eps": np.array(1e-6, dtype), f"{p}w": np.full(8, 0.5, dtype),
             f"{p}b": np.full(8, 0.1, dtype)}
    return nodes, inits


def scores_topk(scores: str, prefix: str = "") -> list:
    """ReduceMean of the scores over the last axis, then a TopK of all 4 rows: the shape of a decoupling."""
    return [h.make_node("ReduceMean", [scores], [f"{prefix}r"], name=f"{prefix}score", axes=[-1], keepdims=0),
            const(f"{prefix}k", np.array([4], np.int64)),
            h.make_node("TopK", [f"{prefix}r", f"{prefix}k"], [f"{prefix}v", f"{prefix}i"], name=f"{prefix}topk",
                        axis=-1)]


def fp32_model(metadata: dict | None = None) -> onnx.ModelProto:
    """x [1, 4, 8] fp32 -> LayerNorm -> MatMul -> TopK of the row scores."""
    norm, inits = layer_norm("x", "xn", "ln/")
    model = make_model(norm + [h.make_node("MatMul", ["xn", "w"], ["s"], name="matmul")] + scores_topk("s"),
                       [("x", T.FLOAT, [1, 4, 8])], [("i", T.INT64, [1, 4])],
                       {**inits, "w": np.ones((8, 8), np.float32)})
    model.graph.name = "main_graph"
    if metadata is not None:
        model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    return model


def fp16_model(selection: str = "cast_inputs", norm_fp32: bool = True) -> onnx.ModelProto:
    """x [1, 4, 8] fp32 -> Cast fp16 -> LayerNorm -> MatMul (fp16 weights) -> scores -> TopK.

    ``selection``: "cast_inputs" (the MatMul's output is cast to fp32 and the scores computed from it),
    "fp16" (TopK on fp16 scores), "cast_scores" (scores in fp16, cast up right before the TopK, via a Reshape).
    ``norm_fp32``: the LayerNorm between Casts in fp32, else in fp16.
    """
    nodes = [h.make_node("Cast", ["x"], ["x16"], name="edge_cast", to=T.FLOAT16)]
    if norm_fp32:
        norm, inits = layer_norm("x32", "xn32", "ln/")
        nodes += [h.make_node("Cast", ["x16"], ["x32"], name="ln_in", to=T.FLOAT)] + norm
        nodes += [h.make_node("Cast", ["xn32"], ["xn"], name="ln_out", to=T.FLOAT16)]
    else:
        norm, inits = layer_norm("x16", "xn", "ln/", np.float16)
        nodes += norm
    nodes += [h.make_node("MatMul", ["xn", "w"], ["s16"], name="matmul")]
    if selection == "cast_inputs":
        nodes += [h.make_node("Cast", ["s16"], ["s"], name="up", to=T.FLOAT)] + scores_topk("s")
    elif selection == "fp16":
        nodes += scores_topk("s16")
    else:
        nodes += [h.make_node("ReduceMean", ["s16"], ["r16"], name="score16", axes=[-1], keepdims=0),
                  h.make_node("Cast", ["r16"], ["r32"], name="late_cast", to=T.FLOAT),
                  const("shape", np.array([1, 4], np.int64)),
                  h.make_node("Reshape", ["r32", "shape"], ["r"], name="reshape"),
                  const("k", np.array([4], np.int64)),
                  h.make_node("TopK", ["r", "k"], ["v", "i"], name="topk", axis=-1)]
    model = make_model(nodes, [("x", T.FLOAT, [1, 4, 8])], [("i", T.INT64, [1, 4])],
                       {**inits, "w": np.ones((8, 8), np.float16)})
    model.graph.name = "main_graph"
    return model


def precision_findings(model, trt: str, precision: str | None = None) -> list[str]:
    return [str(f) for f in check_model(model, trt, precision=precision) if f.kind == PRECISION]


def test_graph_precision_and_intent():
    assert graph_precision(fp32_model()) == "fp32" and graph_precision(fp16_model()) == "fp16"
    assert intended_precision(fp32_model()) == "fp32"
    assert intended_precision(fp32_model({"precision": "fp16"})) == "fp16"
    assert intended_precision(fp32_model({"precision": "fp16"}), "fp32") == "fp32"  # --precision wins


def test_fp32_graph_meant_for_fp16_is_flagged_on_11_only():
    model = fp32_model({"precision": "fp16", "fp32_layers": fp32_layers(fp32_model())})
    assert precision_findings(model, "11") == [STRONGLY_TYPED]
    assert check_model(model, "11") == [Finding("main_graph", "precision", STRONGLY_TYPED.split(": ", 1)[1],
                                                PRECISION)]
    for trt in ("8.5", "8.6", "10.0", "10"):  # the FP16 builder flag exists there, the LayerNorm is pinned
        assert precision_findings(model, trt) == [], trt
    # intent from the command line, no metadata
    assert precision_findings(fp32_model(), "11", "fp16") == [STRONGLY_TYPED]
    assert precision_findings(fp32_model(), "11") == []


def test_fp16_graph_meant_for_fp32_is_flagged_on_11():
    assert precision_findings(fp16_model(), "11", "fp32") == [
        "main_graph [precision]: meant for fp32 but the graph computes in fp16: TensorRT 11 builds strongly typed "
        "networks in the ONNX's own types (no FP16 builder flag), so this builds an fp16 engine; export with "
        "--precision fp32"]


@pytest.mark.parametrize("trt", ["8.6", "10", "11"])
def test_cast_wrapped_selection_and_layer_norm_pass(trt):
    assert check_model(fp16_model(), trt) == []


@pytest.mark.parametrize("trt", ["8.6", "11"])
def test_selection_on_fp16_scores_is_flagged(trt):
    assert precision_findings(fp16_model("fp16"), trt) == [
        "topk [TopK]: selects on FLOAT16 scores (r): near-equal scores round to the same fp16 value and the kept "
        "tokens change; compute the scores in fp32 from Casts of their inputs (tdm-edge export --precision fp16 "
        "does)"]


def test_scores_cast_up_only_for_the_selection_are_flagged():
    assert precision_findings(fp16_model("cast_scores"), "11") == [
        "topk [TopK]: selects on scores computed in fp16 and cast to fp32 only for the selection (late_cast): cast "
        "the inputs of the scores (tokens, q and k), not the scores"]


def test_layer_norm_in_fp16_is_flagged():
    assert precision_findings(fp16_model(norm_fp32=False), "11") == [
        "ln/ReduceMean [ReduceMean]: decomposed LayerNorm computed in FLOAT16 (ln/Pow): its variance overflows fp16 "
        "once |x| exceeds 256; compute it in fp32 between Casts (tdm-edge export --precision fp16 does)"]


def test_flag_path_needs_the_layer_norm_pinned():
    unpinned = fp32_model({"precision": "fp16"})
    expected = ("ln/ReduceMean [ReduceMean]: decomposed LayerNorm in an fp32 graph built with the FP16 builder flag: "
                "TensorRT {} runs it in fp16 unless its layers are pinned to fp32; list them in the metadata's "
                "fp32_layers (tdm-edge export does) or export --precision fp16")
    for trt in ("8.5", "10"):
        assert precision_findings(unpinned, trt) == [expected.format(trt)]
    assert precision_findings(fp32_model(), "10", "fp16") == [expected.format("10")]
    assert precision_findings(fp32_model(), "10") == []  # fp32 build: nothing to pin


def test_layer_norms_and_fp32_layers_name_the_nodes():
    norm_names = ["ln/ReduceMean", "ln/Sub", "ln/Pow", "ln/ReduceMean_1", "ln/Add", "ln/Sqrt", "ln/Div", "ln/Mul",
                  "ln/Add_1"]
    assert [[n.name for n in g] for g in layer_norms(fp32_model().graph)] == [norm_names]
    assert fp32_layers(fp32_model()) == {"layer_norm": norm_names, "selection": ["topk"]}
    # fp16 graph: the LayerNorm (between its Casts) and everything computing in fp32 after the upcast
    assert fp32_layers(fp16_model()) == {"layer_norm": norm_names, "selection": ["up", "score", "topk"]}
    # a LayerNorm computed in fp16 is not listed: it is not fp32 in the graph
    assert fp32_layers(fp16_model(norm_fp32=False)) == {"layer_norm": [], "selection": ["up", "score", "topk"]}


def test_native_layer_normalization_is_one_group():
    model = make_model([h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="ln", axis=-1)],
                       [("x", T.FLOAT, [1, 4, 8])], [("y", T.FLOAT, [1, 4, 8])],
                       {"g": np.ones(8, np.float32), "b": np.zeros(8, np.float32)})
    assert fp32_layers(model) == {"layer_norm": ["ln"], "selection": []}
    assert precision_findings(model, "10", "fp16") == []  # one normalization layer, not the fp16 pattern


def test_unknown_precision_is_a_usage_error():
    from tdm_edge.errors import UsageError

    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        check_model(fp32_model(), "11", precision="int4")


def test_cli_check_precision(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(fp32_model(), str(path))
    assert cli.main(["check", str(path), "--trt", "11"]) == 0
    assert cli.main(["check", str(path), "--trt", "11", "--precision", "fp16"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [STRONGLY_TYPED, f"{path}: 1 problem(s) for TensorRT 11 (13 nodes)"]
