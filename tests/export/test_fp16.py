"""``export --precision fp16`` and ``--native-layer-norm``: fp32 edges, selection and LayerNorms in fp32 by Casts,
verified against fp32 PyTorch, lint-clean for TensorRT 11, the metadata's fp32_layers; the CLI's bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T

from tdm_edge import cli
from tdm_edge.bench.models import trained_like
from tdm_edge.export import fp16
from tdm_edge.export.onnx_export import export_onnx, read_metadata
from tdm_edge.lint.check import check_model
from tdm_edge.lint.precision import SELECTION_OPS, layer_norms
from tdm_edge.reduce.patch import patch_vit
from tdm_edge.runners import OnnxRuntimeRunner

from ..conftest import tiny_vit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


def _tiny(method: str, seed: int = 0):
    """A tiny patched ViT with trained-like weights: LayerNorm affine Mul/Add survive the export."""
    options = {"tome_r": 2} if method == "tome" else {"keep_rate": 0.7, "prune_blocks": (1, 2)}
    return trained_like(patch_vit(tiny_vit(patch_size=8, seed=seed), method=method, **options))


def _types(proto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    return types


@pytest.mark.slow
@pytest.mark.parametrize("method, selections", [("bat", 12), ("evit", 4), ("tome", 12)])
def test_fp16_export_keeps_edges_selection_and_layer_norms_fp32(tmp_path, method, selections):
    model = _tiny(method)
    reference = [p.detach().clone() for p in model.parameters()]
    report = export_onnx(model, tmp_path / "m.onnx", batch=2, precision="fp16")
    proto = onnx.load(tmp_path / "m.onnx")
    types = _types(proto)
    # fp32 at the edges, fp16 weights inside
    assert types["input"] == types["logits"] == T.FLOAT
    assert sum(t.data_type == T.FLOAT16 for t in proto.graph.initializer) > 10
    # every selection op reads fp32 scores, every LayerNorm's variance is fp32
    picks = [n for n in proto.graph.node if n.op_type in SELECTION_OPS]
    assert picks and all(types[n.input[0]] == T.FLOAT for n in picks)
    norms = layer_norms(proto.graph)
    assert len(norms) == 2 * 4 + 1 and all(types[g[2].input[0]] == T.FLOAT for g in norms)
    # verified against the fp32 PyTorch model: same top-1, same selections on this model
    assert report.verification.ok and report.verification.selections_compared == selections
    assert all(c.top1_equal and c.selections_equal for c in report.verification.checks)
    assert report.verification.max_abs_diff <= fp16_atol()
    meta = read_metadata(tmp_path / "m.json")
    assert meta["precision"] == "fp16" and meta["onnx"]["inputs"][0]["dtype"] == "float32"
    assert meta["fp32_layers"]["layer_norm"] == [n.name for g in norms for n in g if types[n.output[0]] == T.FLOAT]
    assert {n.name for n in picks} <= set(meta["fp32_layers"]["selection"])
    assert check_model(proto, "11") == [] and check_model(proto, "10") == []
    # the caller's model is untouched (still fp32, same values)
    assert all(p.dtype == torch.float32 and torch.equal(p, r) for p, r in zip(model.parameters(), reference))


def fp16_atol() -> float:
    from tdm_edge.export.onnx_export import VERIFY_TOLERANCES

    return VERIFY_TOLERANCES["fp16"]["atol"]


def test_fp32_selection_changes_nothing_on_an_fp32_model():
    model = _tiny("bat").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(x)
        with fp16.fp32_selection():
            wrapped = model(x)
    assert torch.equal(plain, wrapped)


def test_fp32_selection_computes_selection_in_fp32_and_tokens_in_fp16():
    model = _tiny("bat")
    half = fp16.HalfEdges(fp16.half_copy(model))
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    seen = {}
    original = fp16.merge.dpc_knn

    def spy(tokens, *args, **kwargs):
        seen["dpc_knn"] = tokens.dtype
        return original(tokens, *args, **kwargs)

    fp16.merge.dpc_knn = spy
    try:
        with torch.no_grad(), fp16.fp32_selection():
            logits = half(x)
    finally:
        fp16.merge.dpc_knn = original
    assert seen == {"dpc_knn": torch.float32} and logits.dtype == torch.float32
    assert next(half.model.parameters()).dtype == torch.float16
    assert isinstance(half.model.blocks[0].norm1, fp16.Fp32LayerNorm)
    with torch.no_grad():
        assert torch.equal(logits.argmax(-1), model(x).argmax(-1))


@pytest.mark.slow
def test_native_layer_norm_is_kept_and_listed(tmp_path):
    model = _tiny("bat")
    report = export_onnx(model, tmp_path / "m.onnx", native_layer_norm=True)
    proto = onnx.load(tmp_path / "m.onnx")
    native = [n.name for n in proto.graph.node if n.op_type == "LayerNormalization"]
    assert len(native) == 9 and report.ops_after["LayerNormalization"] == 9
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["layer_norm"] == "native" and meta["precision"] == "fp32"
    assert meta["fp32_layers"] == {"layer_norm": native,
                                   "selection": [n.name for n in proto.graph.node if n.op_type in SELECTION_OPS]}
    assert check_model(proto, "8.6") == [] and check_model(proto, "10", precision="fp16") == []
    assert {f.op_type for f in check_model(proto, "8.5")} == {"LayerNormalization"}


def test_default_export_pins_the_decomposed_layer_norms(tmp_path):
    model = _tiny("evit")
    export_onnx(model, tmp_path / "m.onnx", verify=False)
    proto = onnx.load(tmp_path / "m.onnx")
    meta = read_metadata(tmp_path / "m.onnx")
    norms = layer_norms(proto.graph)
    assert meta["precision"] == "fp32" and len(norms) == 9 and all(len(g) == 9 for g in norms)  # 7 + Mul + Add
    assert meta["fp32_layers"]["layer_norm"] == [n.name for g in norms for n in g]
    # meant for fp16 with the builder flag on 8.5..10: the pinned LayerNorms pass; on 11 it cannot be fp16
    for trt in ("8.5", "10"):
        assert check_model(proto, trt, precision="fp16") == [], trt
    assert [f.kind for f in check_model(proto, "11", precision="fp16")] == ["precision"]


@pytest.mark.slow
def test_fp16_onnx_runs_on_onnx_runtime_cpu(tmp_path):
    model = _tiny("bat")
    export_onnx(model, tmp_path / "m.onnx", batch=3, precision="fp16", verify=False, sidecar=False)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with OnnxRuntimeRunner(str(tmp_path / "m.onnx")) as runner:
        out = runner.infer({"input": x.numpy()})["logits"]
    with torch.no_grad():
        ref = model(x).numpy()
    assert out.dtype == np.float32 and out.shape == (3, 10)
    assert np.abs(out - ref).max() <= fp16_atol() and np.array_equal(out.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp16", "--merge", "plugin"], "--precision fp16 needs --merge ops"),
    (["--native-layer-norm", "--opset", "16"], "--native-layer-norm needs --opset 17 or later"),
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
])
def test_cli_bad_precision_options_are_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "m.onnx"
    with pytest.raises(SystemExit) if "fp8" in argv else _nothing() as raised:
        code = cli.main(["export", "--model", "deit_tiny_patch16_224", "-o", str(out), *argv])
    code = raised.value.code if raised is not None else code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
