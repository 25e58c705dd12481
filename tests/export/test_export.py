"""ONNX export: static shapes, metadata, exact selections, verification, atomic writes, the CLI's bad input."""

import json

import numpy as np
import onnx
import pytest
import torch
from timm.data import resolve_data_config

from tdm_edge import cli
from tdm_edge.reduce import merge
from tdm_edge.errors import UsageError
from tdm_edge.export.onnx_export import METADATA_KEY, VerificationError, export_onnx, read_metadata
from tdm_edge.reduce.models import create_model
from tdm_edge.reduce.patch import patch_vit
from tdm_edge.runners import OnnxRuntimeRunner, PyTorchRunner
from tdm_edge.export.verify import InputCheck, sorted_within

from ..conftest import tiny_vit

FORBIDDEN = {"NonZero", "ScatterND", "ScatterElements", "Loop", "If", "RandomUniformLike", "EyeLike"}


def _tiny(method: str, seed: int = 0):
    return patch_vit(tiny_vit(patch_size=8, seed=seed), method=method, keep_rate=0.7, prune_blocks=(1, 2))


def _static_dims(proto) -> list[int | str]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    values = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for v in values for d in v.type.tensor_type.shape.dim]


@pytest.mark.parametrize("method, selections", [("bat", 12), ("evit", 4), ("tome", 12), ("none", 0)])
def test_export_is_static_verified_and_carries_its_schedule(tmp_path, method, selections):
    model = _tiny(method)
    report = export_onnx(model, tmp_path / "m.onnx", batch=2)
    proto = onnx.load(tmp_path / "m.onnx")
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 32, 32]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert all(isinstance(d, int) and d > 0 for d in _static_dims(proto))  # no symbolic or unknown dim anywhere
    assert not FORBIDDEN & {n.op_type for n in proto.graph.node}
    assert report.nodes_after < report.nodes_before and report.simplified
    assert report.verification.ok and report.verification.selections_compared == selections
    assert all(c.selections_equal and c.top1_equal for c in report.verification.checks)
    assert report.verification.max_abs_diff <= 1e-4
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta == json.loads((tmp_path / "m.json").read_text()) == read_metadata(tmp_path / "m.onnx")
    assert meta["reduction"]["stage_tokens"] == model.tdm_schedule.stage_tokens
    assert meta["onnx"]["opset"] == 17 and proto.opset_import[0].version == 17
    timm_cfg = resolve_data_config({"input_size": (3, 32, 32)}, model=model)
    assert meta["preprocessing"]["mean"] == list(timm_cfg["mean"])
    assert meta["preprocessing"]["crop_pct"] == timm_cfg["crop_pct"]
    assert meta["labels"] is None  # 10 classes: no known label set


def test_topk_in_the_graph_has_constant_k_and_counts_match_the_schedule(tmp_path):
    model = _tiny("bat")
    export_onnx(model, tmp_path / "m.onnx", batch=1, verify=False)
    proto = onnx.load(tmp_path / "m.onnx")
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    consts.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
                   if n.op_type == "Constant"})
    ks = [int(consts[n.input[1]][0]) for n in proto.graph.node if n.op_type == "TopK"]
    assert ks and all(isinstance(k, int) for k in ks)
    assert {16, 12} <= set(ks)  # full-length sorts of the 16 and 12 patch tokens entering the two stages


def test_exported_sort_breaks_ties_by_index_like_eager(tmp_path):
    class Decouple(torch.nn.Module):
        def forward(self, w):
            att, inatt = merge.decouple(w, 3)
            return att, inatt

    w = torch.tensor([[0.5, 0.2, 0.5, 0.2, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    torch.onnx.export(Decouple(), (w,), tmp_path / "d.onnx", dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["att", "inatt"])
    with OnnxRuntimeRunner(tmp_path / "d.onnx") as runner:
        out = runner.infer({"input": w.numpy()})
    assert out["att"].tolist() == [[0, 2, 4], [0, 1, 2]]
    assert out["inatt"].tolist() == [[1, 3, 5], [3, 4, 5]]
    assert [t.tolist() for t in merge.decouple(w, 3)] == [out["att"].tolist(), out["inatt"].tolist()]


def test_gather_tokens_equals_elementwise_gather():
    x, idx = torch.randn(3, 7, 5), torch.randint(0, 7, (3, 4))
    expected = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, 5))
    assert torch.equal(merge.gather_tokens(x, idx), expected)


def test_dynamic_batch_has_only_the_batch_dynamic(tmp_path):
    model = _tiny("bat", seed=1)
    report = export_onnx(model, tmp_path / "d.onnx", dynamic_batch=True)
    proto = onnx.load(tmp_path / "d.onnx")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert report.batch is None and report.metadata["onnx"]["inputs"][0]["shape"] == [None, 3, 32, 32]
    assert {c.batch for c in report.verification.checks} == {1, 3}
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32), dtype=np.float32)
    with OnnxRuntimeRunner(tmp_path / "d.onnx") as ort_r, PyTorchRunner(model) as pt_r:
        assert np.abs(ort_r.infer({"input": x})["logits"] - pt_r.infer({"input": x})["logits"]).max() <= 1e-4


def test_failed_verification_writes_nothing(tmp_path):
    with pytest.raises(VerificationError, match="verification failed"):
        export_onnx(_tiny("bat"), tmp_path / "m.onnx", atol=0.0)  # fp32 differences are never exactly zero
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_and_paths_are_usage_errors(tmp_path):
    model = _tiny("bat")
    (tmp_path / "file").write_text("x")
    for kwargs, message in [({"path": tmp_path / "missing" / "m.onnx"}, "does not exist"),
                            ({"path": tmp_path}, "is a directory"),
                            ({"path": tmp_path / "file" / "m.onnx"}, "does not exist"),
                            ({"path": tmp_path / "m.onnx", "opset": 12}, "opset 12"),
                            ({"path": tmp_path / "m.onnx", "batch": 0}, "batch")]:
        with pytest.raises(UsageError, match=message):
            export_onnx(model, **kwargs)
    with pytest.raises(UsageError, match="random"):
        export_onnx(patch_vit(tiny_vit(), method="random", prune_blocks=(1,)), tmp_path / "r.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_tie_flips_pass_only_when_explained():
    flipped = InputCheck("x", 1, 3e-2, True, ["tdm_attentive_0"], forced_diff=2e-6, forced_top1=True,
                         orders_valid=True)
    assert flipped.passed(1e-4, strict_selections=False) and not flipped.passed(1e-4, strict_selections=True)
    assert not InputCheck("x", 1, 3e-2, True, ["a"], 2e-6, True, orders_valid=False).passed(1e-4, False)
    assert not InputCheck("x", 1, 3e-2, True, ["a"], 5e-4, True, True).passed(1e-4, False)
    assert not InputCheck("x", 1, 2e-4, True).passed(1e-4, False)
    scores = np.array([[0.3, 0.1, 0.3 - 1e-9, 0.2]])
    assert sorted_within(np.array([[2, 0, 3, 1]]), scores, 1e-8)  # a near-tie in either order is valid
    assert not sorted_within(np.array([[0, 3, 2, 1]]), scores, 1e-8)
    assert not sorted_within(np.array([[0, 0, 3, 1]]), scores, 1e-8)  # not a permutation


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tdm-edge ")
    return err


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = str(tmp_path / "m.onnx")
    assert "unknown model" in _one_line_error(capsys, ["export", "--model", "deit_smal_patch16_224", "-o", out])
    assert "does not exist" in _one_line_error(capsys, ["export", "--model", "deit_tiny_patch16_224",
                                                        "-o", str(tmp_path / "no" / "m.onnx")])
    ckpt = tmp_path / "tiny.pth"
    torch.save(tiny_vit().state_dict(), ckpt)
    assert "does not fit" in _one_line_error(capsys, ["export", "--model", "deit_tiny_patch16_224",
                                                      "--checkpoint", str(ckpt), "-o", out])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf")
    _one_line_error(capsys, ["check", str(bad)])
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_writes_a_verified_model(tmp_path, capsys):
    out = tmp_path / "t.onnx"
    argv = ["export", "--model", "deit_tiny_patch16_224", "--img-size", "64", "--keep-rate", "0.7",
            "--batch", "2", "-o", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "17 -> 13 -> 10 -> 8" in text and "verification: passed" in text
    meta = read_metadata(out.with_suffix(".json"))
    assert meta["model"]["name"] == "deit_tiny_patch16_224" and meta["onnx"]["batch"] == 2
    assert len(meta["labels"]) == 1000 and meta["labels"][0].startswith("tench")
    assert meta["preprocessing"]["input_size"] == [3, 64, 64] and meta["preprocessing"]["interpolation"] == "bicubic"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_small_patch16_224", "deit_tiny_patch16_224"])
def test_deit_round_trip_is_verified_and_lint_clean(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name, method="bat", keep_rate=0.7)
    report = export_onnx(model, tmp_path / "m.onnx", name=name)
    assert report.metadata["reduction"]["stage_tokens"] == [197, 139, 98, 69]
    assert report.verification.ok and report.verification.selections_compared == 18  # 6 per stage
    check = pytest.importorskip("tdm_edge.export.check")
    proto = onnx.load(tmp_path / "m.onnx")
    for trt in ("8.5", "10"):
        assert check.check_model(proto, trt) == [], trt
