"""Selection outputs added on the device (tdm_edge.runners.selections: onnx only) to an export that has none."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tdm_edge.errors import UsageError
from tdm_edge.metadata import METADATA_KEY
from tdm_edge.runners.onnxrt import OnnxRuntimeRunner
from tdm_edge.runners.selections import add_selection_outputs, graph_selections, output_selections


def test_added_outputs_are_described_and_run(device_files):
    proto = onnx.load(str(device_files / "pruned.onnx"))
    assert output_selections(proto) == []  # exported without --selection-outputs
    names = graph_selections(proto)
    assert {n.rsplit("_", 1)[0] for n in names} >= {"tdm_attentive", "tdm_inattentive", "tdm_clusters"}
    assert sorted({int(n.rsplit("_", 1)[1]) for n in names}) == [0, 1, 2]  # three reducing stages
    copy = add_selection_outputs(proto)
    assert output_selections(copy) == names and len(proto.graph.output) == 1  # the original is untouched
    meta = json.loads({p.key: p.value for p in copy.metadata_props}[METADATA_KEY])
    assert meta["selections"] == names
    described = {o["name"]: o for o in meta["onnx"]["outputs"]}
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with OnnxRuntimeRunner(copy) as runner:
        out = runner.infer({"input": x})
    with OnnxRuntimeRunner(device_files / "pruned.onnx") as runner:
        plain = runner.infer({"input": x})
    np.testing.assert_array_equal(out["logits"], plain["logits"])  # declaring outputs computes nothing new
    tokens = [65, 46, 33]
    for name in names:
        stage = int(name.rsplit("_", 1)[1])
        assert list(out[name].shape) == described[name]["shape"]
        if described[name]["dtype"] == "int64":  # indices into the stage's patch tokens
            assert out[name].dtype == np.int64 and 0 <= out[name].min() and out[name].max() < tokens[stage] - 1
    attentive = out["tdm_attentive_0"][0]
    assert len(set(attentive.tolist())) == len(attentive)  # a selection, no token twice
    assert add_selection_outputs(copy).graph.output == copy.graph.output  # adding again changes nothing


def test_unknown_selection_is_one_line(device_files):
    proto = onnx.load(str(device_files / "pruned.onnx"))
    with pytest.raises(UsageError, match="not found in the graph: tdm_attentive_9"):
        add_selection_outputs(proto, ["tdm_attentive_9"])
