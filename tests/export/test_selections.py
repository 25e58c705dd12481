import numpy as np
import onnx
import torch

from tdm_edge.export.onnx_export import export_onnx, read_metadata
from tdm_edge.export.selections import add_selection_outputs, output_selections
from tdm_edge.export.verify import run_with_selections, structured_images
from tdm_edge.reduce.patch import patch_vit
from tdm_edge.runners.onnxrt import OnnxRuntimeRunner

from ..conftest import tiny_vit


def test_selection_outputs_equal_pytorchs_and_are_described(tmp_path):
    model = patch_vit(tiny_vit(), "bat", 0.7)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, verify=False, selection_outputs=True)
    meta = read_metadata(path)
    x = structured_images(1, (32, 32), [0.5] * 3, [0.25] * 3)
    _, expected, _ = run_with_selections(model.eval(), torch.from_numpy(x))
    names = list(expected)  # every selection the model records, in recording order
    proto = onnx.load(str(path))
    assert output_selections(proto) == names == meta["selections"]
    assert [o["name"] for o in meta["onnx"]["outputs"]] == ["logits", *names]
    assert read_metadata(tmp_path / "m.json")["selections"] == names  # the sidecar says the same
    with OnnxRuntimeRunner(path) as runner:
        out = runner.infer({"input": x})
    for name in names:
        np.testing.assert_array_equal(out[name], expected[name])
    again = add_selection_outputs(proto)  # adding them to a model that has them changes nothing
    assert [o.name for o in again.graph.output] == [o.name for o in proto.graph.output]


def test_selections_added_to_a_shipped_model_in_memory(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(patch_vit(tiny_vit(), "evit", 0.7), path, verify=False)
    proto = onnx.load(str(path))
    assert output_selections(proto) == []
    added = add_selection_outputs(proto)
    assert output_selections(added) == ["tdm_attentive_0", "tdm_inattentive_0", "tdm_attentive_1",
                                        "tdm_inattentive_1", "tdm_attentive_2", "tdm_inattentive_2"]


def test_export_command_has_the_option():
    from tdm_edge.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["export", "-o", "m.onnx", "--selection-outputs"]).selection_outputs is True
    assert parse(["export", "-o", "m.onnx"]).selection_outputs is False
