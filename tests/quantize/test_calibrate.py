"""calibrate on a tiny ViT trained in the test: placements, dtypes, zero points, opset, metadata, agreement."""

import json
import os
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from tdm_edge.cli import main
from tdm_edge.lint.check import check_model
from tdm_edge.export.onnx_export import read_metadata
from tdm_edge.provenance import sha256_file
from tdm_edge.quantize.calibrate import ranking_inputs, select_nodes
from tdm_edge.quantize.data import load_images


@pytest.fixture(scope="module")
def int8(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("trt") / "tiny_bat.int8.onnx"
    assert main(["calibrate", str(trained["fp32"]), "--images", str(trained["calib"]), "-o", str(out)]) == 0
    return out


def _compare(capsys, fp32, int8_path, images):
    capsys.readouterr()
    assert main(["compare", str(fp32), str(int8_path), "--images", str(images), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_trained_model_has_learnt_its_task(trained):
    assert trained["accuracy"] >= 0.95  # otherwise agreement below would compare near-random logits


def test_qdq_only_on_linear_layers_and_attention_products_never_on_the_merge_path(trained, int8):
    fp32, q = onnx.load(trained["fp32"]), onnx.load(int8)
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    fed = [n for n in q.graph.node if any(i in dq_out for i in n.input)]
    assert fed and {n.op_type for n in fed} <= {"MatMul", "Gemm"}
    weights = {t.name for t in fp32.graph.initializer}
    linear = [n.name for n in fp32.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
    assert len(linear) == 4 * 4 + 1  # qkv, proj, fc1, fc2 per block, head
    assert sorted(n.name for n in fed) == sorted(select_nodes(fp32))
    assert len(fed) == len(linear) + 4 * 2  # + Q K^T and A V in each of the 4 blocks
    # the class attention of the 3 pruning stages (MatMul -> Softmax -> ReduceMean) and the merge MatMuls stay float
    float_matmuls = [n for n in q.graph.node if n.op_type == "MatMul" and n not in fed]
    assert len(float_matmuls) == 3 * 5
    producers = {o: n for n in q.graph.node for o in n.output}
    for name in ("tdm_attentive_0", "tdm_clusters_1", "tdm_partners_2"):  # selections computed from float only
        assert producers[name].op_type in ("Slice", "Cast", "GatherElements")


def test_int8_symmetric_per_channel_opset_17_and_clean_for_tensorrt(int8):
    q = onnx.load(int8)
    assert [(o.domain, o.version) for o in q.opset_import if o.domain in ("", "ai.onnx")] == [("", 17)]
    assert {n.domain for n in q.graph.node} == {""}
    inits = {t.name: t for t in q.graph.initializer}
    qdq = [n for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        zp = inits[node.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8
        assert not numpy_helper.to_array(zp).any()
    weight_dq = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert len(weight_dq) == 17
    for node in weight_dq:
        w, scale = inits[node.input[0]], numpy_helper.to_array(inits[node.input[1]])
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert w.data_type == onnx.TensorProto.INT8 and scale.shape == (w.dims[axis],)
    for trt in ("8.5", "10"):
        assert check_model(q, trt) == []


def test_metadata_records_recipe_calibration_set_and_parent(trained, int8):
    meta = read_metadata(int8)
    quant = meta["quantization"]
    assert quant["target"] == "trt" and quant["recipe"]["name"] == "default"
    images = load_images(meta["preprocessing"], images=str(trained["calib"]), num=512)
    assert quant["calibration"] == {"count": 64, "source": f"images:{trained['calib']}", "sha256": images.sha256}
    assert quant["parent"] == {"file": "tiny_bat.onnx", "sha256": sha256_file(trained["fp32"])}
    assert json.loads((int8.parent / "tiny_bat.int8.json").read_text()) == meta
    assert oct(os.stat(int8).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_trt_int8_agrees_with_fp32_on_held_out_images(trained, int8, capsys):
    report = _compare(capsys, trained["fp32"], int8, trained["held_out"])
    assert report["images"] == 200
    assert report["top1_agreement"] >= 0.99
    assert report["logit_cosine_min"] > 0.98
    # measured 83 % (166/200): int8 q and k move the class attention of near-tied background tokens across the K
    # boundary. The default recipe promises no share (docs/int8.md: selection_stable is the one for >= 95 %), so
    # this is a regression guard, not a target: 16 images of slack over a deterministic run (seeded single-thread
    # training, images from fixed seeds, ORT CPU); it fails once 51 of 200 images change their kept set.
    assert report["stages"][0]["kept"]["identical_images"] >= 0.75


def test_selection_stable_recipe_keeps_the_first_stage_tokens_on_95_percent(trained, tmp_path, capsys):
    out = tmp_path / "stable.onnx"
    recipe = Path(__file__).resolve().parents[2] / "calibration" / "selection_stable.json"
    assert main(["calibrate", str(trained["fp32"]), "--images", str(trained["calib"]), "--recipe", str(recipe),
                 "-o", str(out)]) == 0
    q = onnx.load(out)
    dq_out = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    fed = {n.name for n in q.graph.node if any(i in dq_out for i in n.input)}
    assert len(fed) == 17 - 3 and not fed & set(ranking_inputs(onnx.load(trained["fp32"])))
    report = _compare(capsys, trained["fp32"], out, trained["held_out"])
    assert report["top1_agreement"] >= 0.99
    # the brief's target that this recipe exists to meet (docs/int8.md, calibration/selection_stable.json): measured
    # 193/200, 3 images of slack, on purpose: the run is deterministic (seeded single-thread training, images from
    # fixed seeds, ORT CPU), so a drop below 190/200 is the recipe no longer meeting its promise, not noise
    assert report["stages"][0]["kept"]["identical_images"] >= 0.95


def test_cpu_target_is_dynamic_int8_matmuls_and_agrees(trained, tmp_path, capsys):
    out = tmp_path / "cpu.onnx"
    assert main(["calibrate", str(trained["fp32"]), "--target", "cpu", "-o", str(out)]) == 0
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count("MatMulInteger") == 17 and "QuantizeLinear" not in ops  # weights' MatMuls; attention in float
    assert read_metadata(out)["quantization"]["calibration"] is None
    report = _compare(capsys, trained["fp32"], out, trained["held_out"])
    assert report["top1_agreement"] >= 0.99


def test_fp32_against_itself_changes_nothing(trained, capsys):
    report = _compare(capsys, trained["fp32"], trained["fp32"], trained["calib"])
    assert report["top1_agreement"] == 1.0 and report["logit_cosine_min"] == pytest.approx(1.0)
    for stage in report["stages"]:
        assert {k: v["changed_tokens"] for k, v in stage.items() if isinstance(v, dict)} == \
            {"kept": 0.0, "matched": 0.0, "clustered": 0.0}


def test_quantize_for_cpu_is_the_cpu_target(trained, tmp_path):
    from tdm_edge.quantize import quantize_for_cpu

    report = quantize_for_cpu(trained["fp32"], tmp_path / "b.onnx")
    assert (report.target, report.mode, report.quantized_nodes) == ("cpu", "dynamic", 17)
    assert [n.op_type for n in onnx.load(tmp_path / "b.onnx").graph.node].count("MatMulInteger") == 17
