"""``tdm-edge export --merge plugin``: one TdmBatMerge node per BAT stage, attributes that mean what they say, and
``tdm-edge check`` knowing the plugin. ONNX Runtime cannot run the plugin: the graph is checked by expanding every
plugin node back into the standard ops of the stage its attributes describe."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tdm_edge import cli
from tdm_edge.lint.check import check_model
from tdm_edge.export.onnx_export import METADATA_KEY, export_onnx
from tdm_edge.lint.plugin_check import DOMAIN, PLUGIN_NAME, SIZE_ATTRS
from tdm_edge.export.plugin_graph import expand_plugin_nodes, node_sizes
from tdm_edge.reduce.patch import patch_vit

from ..conftest import tiny_vit


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory):
    """``tdm-edge export --merge plugin`` of DeiT-Tiny at 64 px (17 -> 13 -> 10 -> 8 tokens), batch 2."""
    out = tmp_path_factory.mktemp("plugin") / "p.onnx"
    argv = ["export", "--model", "deit_tiny_patch16_224", "--img-size", "64", "--batch", "2", "--merge", "plugin",
            "-o", str(out)]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = cli.main(argv)
    return code, text.getvalue(), out


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_one_plugin_node_per_stage_with_the_stage_sizes(cli_export):
    code, text, path = cli_export
    assert code == 0 and "verification: passed" in text
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    nodes = [n for n in proto.graph.node if n.op_type == PLUGIN_NAME]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    stages = meta["reduction"]["stages"]
    assert [s["n_in"] for s in stages] == [17, 13, 10] and len(nodes) == 3
    for node, stage in zip(nodes, stages):
        attrs = _attrs(node)
        assert node.domain == DOMAIN and len(node.input) == 2 and len(node.output) == 1
        assert {k: attrs[k] for k in SIZE_ATTRS} == {"n": stage["n_in"], "c": 192, "keep": stage["keep"],
                                                     "pairs": stage["pairs"], "clusters": stage["clusters"],
                                                     "knn": stage["knn"]}
        assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b""
    assert any(op.domain == DOMAIN and op.version == 1 for op in proto.opset_import)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"TopK", "ArgMax", "ArgMin", "ReduceMin", "ReduceMax"}  # every selection is inside the plugin
    assert meta["merge"]["mode"] == "plugin" and meta["merge"]["stages"] == [node_sizes(n) for n in nodes]
    assert json.loads(path.with_suffix(".json").read_text())["merge"] == meta["merge"]


def test_check_knows_the_plugin(cli_export, capsys):
    _, _, path = cli_export
    for trt in ("8.5", "10"):
        assert cli.main(["check", str(path), "--trt", trt]) == 1  # a plugin must be loaded: the lint says so
        out = capsys.readouterr().out
        assert out.count("needs plugin 'TdmBatMerge' (version 1, namespace '')") == 3
        assert out.count("load libtdm_merge_plugin.so") == 3 and "6 need a plugin loaded" in out
        assert ("--plugins=PATH" if trt == "8.5" else "--dynamicPlugins=PATH") in out
    proto = onnx.load(path)
    assert {f.kind for f in check_model(proto, "8.6")} == {"plugin"}  # nothing else is wrong with the graph
    node = next(n for n in proto.graph.node if n.op_type == PLUGIN_NAME)
    version = next(a for a in node.attribute if a.name == "plugin_version")
    version.s = b"2"  # the IPluginV3 version: TensorRT 10+ only
    assert {f.kind for f in check_model(proto, "10")} == {"plugin"}
    assert [f.op_type for f in check_model(proto, "8.5") if f.kind != "plugin"] == [PLUGIN_NAME]
    clusters = next(a for a in node.attribute if a.name == "clusters")
    clusters.i = 99  # more clusters than inattentive tokens
    assert ["invalid sizes" in f.reason for f in check_model(proto, "10") if f.kind != "plugin"] == [True]
    node.attribute.remove(clusters)
    assert ["clusters missing" in f.reason for f in check_model(proto, "10") if f.kind != "plugin"] == [True]


def test_expanded_plugin_graph_equals_pytorch_and_attributes_matter(tmp_path):
    model = patch_vit(tiny_vit(patch_size=8), method="bat", keep_rate=0.7, prune_blocks=(1, 2))
    export_onnx(model, tmp_path / "p.onnx", dynamic_batch=True, merge="plugin", verify=False)
    proto = onnx.load(tmp_path / "p.onnx")
    assert {f.kind for f in check_model(proto, "10")} == {"plugin"}  # only "load our plugin", dynamic batch too
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model(x).numpy()

    def run(p) -> np.ndarray:
        session = ort.InferenceSession(expand_plugin_nodes(p).SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(["logits"], {"input": x.numpy()})[0]

    assert np.abs(run(proto) - want).max() <= 1e-5
    node = next(n for n in proto.graph.node if n.op_type == PLUGIN_NAME)
    attrs = {a.name: a for a in node.attribute}
    assert (attrs["pairs"].i, attrs["clusters"].i) == (1, 1)
    attrs["pairs"].i, attrs["clusters"].i = 2, 2  # the same output shape, other merges
    assert np.abs(run(proto) - want).max() > 1e-3


def test_merge_plugin_needs_a_bat_model(tmp_path, capsys):
    argv = ["export", "--model", "deit_tiny_patch16_224", "--img-size", "64", "--method", "evit", "--merge",
            "plugin", "-o", str(tmp_path / "e.onnx")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TdmBatMerge" in err and "evit" in err
    assert not (tmp_path / "e.onnx").exists()
