"""ONNX export: static shapes, metadata, exact selections, verification, atomic writes, the CLI's bad input."""

import hashlib
import json
import os

import numpy as np
import onnx
import pytest
import torch
from timm.data import resolve_data_config

import tdm_edge
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
    (tmp_path / "m.onnx").write_bytes(b"the previous model")
    (tmp_path / "m.json").write_bytes(b"its sidecar")
    with pytest.raises(VerificationError, match="verification failed"):
        # a graph that disagrees with PyTorch by 1.0 (the hook adds 1 to the logits outside the export), far over
        # the default atol: fp32 ONNX Runtime may match PyTorch bit for bit, so atol=0.0 would prove nothing
        model = _tiny("bat")
        model.head.register_forward_hook(lambda m, i, out: out if torch.onnx.is_in_onnx_export() else out + 1.0)
        export_onnx(model, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]  # no temporary file either
    assert (tmp_path / "m.onnx").read_bytes() == b"the previous model"
    assert (tmp_path / "m.json").read_bytes() == b"its sidecar"


def test_bad_settings_and_paths_are_usage_errors(tmp_path):
    model = _tiny("bat")
    (tmp_path / "file").write_text("x")
    (tmp_path / "side.json").mkdir()
    for kwargs, message in [({"path": tmp_path / "missing" / "m.onnx"}, "does not exist"),
                            ({"path": tmp_path}, "must end in .onnx"),
                            ({"path": tmp_path / "file" / "m.onnx"}, "is not a directory"),
                            ({"path": tmp_path / "side.onnx"}, "sidecar .*side.json is a directory"),
                            ({"path": tmp_path / "m.onnx", "opset": 12}, "opset 12"),
                            ({"path": tmp_path / "m.onnx", "batch": 0}, "batch")]:
        with pytest.raises(UsageError, match=message):
            export_onnx(model, **kwargs)
    with pytest.raises(UsageError, match="random"):
        export_onnx(patch_vit(tiny_vit(), method="random", prune_blocks=(1,)), tmp_path / "r.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "side.json"]


def test_metadata_records_weights_settings_channel_order_and_verification(tmp_path):
    model = patch_vit(tiny_vit(patch_size=8), method="tome", tome_r=3)
    report = export_onnx(model, tmp_path / "m.onnx", batch=1)
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["weights"] == "random"  # patched by hand, never loaded through tdm-edge: nothing says otherwise
    assert meta["reduction"]["settings"] == {"prune_blocks": None, "cluster_ratio": None, "knn": None, "tome_r": 3}
    assert meta["preprocessing"]["channel_order"] == "RGB"
    v, checks = meta["verification"], report.verification.checks
    assert v["status"] == "passed" and v["max_abs_diff"] == report.verification.max_abs_diff <= 1e-4
    assert v["selections_identical"] == f"{sum(c.selections_equal for c in checks)}/{len(checks)}"
    assert v["inputs"] == len(checks) and v["selections_compared"] == report.verification.selections_compared
    assert meta["tool"]["name"] == "tdm-edge" and meta["tool"]["version"] == tdm_edge.__version__
    told = {"file": "deit.pth", "sha256": "ab" * 32}
    export_onnx(model, tmp_path / "n.onnx", verify=False, simplify=False, weights=told)
    meta = read_metadata(tmp_path / "n.json")
    assert meta["weights"] == told and meta["verification"] == {"status": "skipped"}


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
    out.write_bytes(b"an older export")
    os.chmod(out, 0o600)
    ckpt = tmp_path / "deit_t.pth"
    torch.save(create_model("deit_tiny_patch16_224", img_size=64, method="none").state_dict(), ckpt)
    argv = ["export", "--model", "deit_tiny_patch16_224", "--img-size", "64", "--keep-rate", "0.7",
            "--batch", "2", "--checkpoint", str(ckpt), "-o", str(out)]
    old_mask = os.umask(0o022)
    try:
        assert cli.main(argv) == 0
    finally:
        os.umask(old_mask)
    text = capsys.readouterr().out
    assert "17 -> 13 -> 10 -> 8" in text and "verification: passed" in text
    stages = [line.split("] ")[1].split(":")[0] for line in text.splitlines() if line.startswith("[")]
    assert stages == ["import", "build", "trace", "simplify", "verify", "write"]  # each as it happens
    assert text.splitlines()[-1].startswith("done in ") and "wall time, imports included" in text
    assert oct(os.stat(out).st_mode & 0o777) == oct(os.stat(out.with_suffix(".json")).st_mode & 0o777) == "0o644"
    meta = read_metadata(out.with_suffix(".json"))
    assert meta == read_metadata(out)
    assert meta["weights"] == {"file": "deit_t.pth", "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    assert f"weights: deit_t.pth (sha256 {meta['weights']['sha256'][:12]})" in text
    assert meta["reduction"]["settings"] == {"prune_blocks": [3, 6, 9], "cluster_ratio": 0.25, "knn": 5,
                                             "tome_r": None}
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
    from tdm_edge.lint import check  # our own module: an import error fails, never skips
    proto = onnx.load(tmp_path / "m.onnx")
    for trt in ("8.5", "10"):
        assert check.check_model(proto, trt) == [], trt
