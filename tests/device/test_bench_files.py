"""bench of files (tdm_edge.bench.files): what is compared with what, read from each file's own metadata."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from tdm_edge.bench.files import file_backend, file_table, plan
from tdm_edge.errors import UsageError
from tdm_edge.metadata import METADATA_KEY


def tagged_onnx(path, size=32, batch=1, method="none"):
    """A one-node ONNX carrying tdm-edge metadata with the given input size, batch and method."""
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3, size, size])])
    model = helper.make_model(graph)
    meta = {"model": {"name": f"m{size}"}, "weights": "random", "onnx": {"batch": batch},
            "reduction": {"method": method, "keep_rate": 1.0, "stage_tokens": [5]},
            "preprocessing": {"input_size": [3, size, size]}}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def test_backend_follows_the_file(tmp_path):
    onnx_file, engine = tagged_onnx(tmp_path / "a.onnx"), tmp_path / "a.engine"
    engine.write_bytes(b"x")
    assert file_backend(str(onnx_file), None) == file_backend(str(onnx_file), "ort") == "ort"
    assert file_backend(str(engine), None) == "trt"
    with pytest.raises(UsageError, match="--backend trt cannot run .*a.onnx: an .onnx runs on ONNX Runtime"):
        file_backend(str(onnx_file), "trt")
    with pytest.raises(UsageError, match="--backend ort cannot run .*a.engine"):
        file_backend(str(engine), "ort")
    with pytest.raises(UsageError, match="model not found"):
        file_backend(str(tmp_path / "b.onnx"), None)


def test_plan_reads_each_files_metadata(device_files):
    specs, described, batch, shape = plan(str(device_files / "pruned.onnx"), str(device_files / "unpruned.onnx"),
                                          None, None, 2)
    assert batch == 1 and shape == (3, 32, 32)
    assert {k: (s.backend, s.threads) for k, s in specs.items()} == {"pruned": ("ort", 2), "baseline": ("ort", 2)}
    assert described["pruned"]["method"] == "bat" and described["pruned"]["keep_rate"] == 0.7
    assert described["baseline"]["name"] == "tiny" and described["baseline"]["stage_tokens"] == [65]


def test_plan_refuses_what_cannot_be_compared(tmp_path, device_files):
    small, engine = tagged_onnx(tmp_path / "small.onnx", size=16), tmp_path / "m.engine"
    with pytest.raises(UsageError, match=r"different inputs: .*pruned.onnx \[3, 32, 32\], .*small.onnx \[3, 16, 16\]"):
        plan(str(device_files / "pruned.onnx"), str(small), None, None, 1)
    with pytest.raises(UsageError, match="static batch of 1; --batch 8 cannot run on it"):
        plan(str(device_files / "pruned.onnx"), str(device_files / "unpruned.onnx"), None, 8, 1)
    engine.write_bytes(b"x")
    (tmp_path / "m.engine.json").write_text(json.dumps({"metadata": {"preprocessing": {"input_size": [3, 32, 32]},
                                                                     "onnx": {"batch": 1}}}))
    with pytest.raises(UsageError, match="same backend"):
        plan(str(device_files / "pruned.onnx"), str(engine), None, None, 1)


def test_a_dynamic_batch_takes_the_batch_given(tmp_path):
    a, b = tagged_onnx(tmp_path / "a.onnx", batch=None), tagged_onnx(tmp_path / "b.onnx", batch=None)
    assert plan(str(a), str(b), None, 4, 1)[2] == 4
    assert plan(str(a), str(b), None, None, 1)[2] == 1


def test_table_names_both_files_and_the_ratio():
    per = {"p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": 2.0, "images_per_s": 1000.0}
    result = {"settings": {"backend": "ort", "batch": 1, "repeats": 3}, "machine": {"device": "cpu"},
              "models": {"pruned": {"file": "p.onnx", "method": "bat", "keep_rate": 0.7, "stage_tokens": [197, 139]},
                         "baseline": {"file": "u.onnx", "method": "none", "keep_rate": 1.0, "stage_tokens": None}},
              "per_model": {"pruned": per, "baseline": dict(per, p50_ms=2.0)},
              "ratios": {"pruned/baseline": 0.5}, "ratio_ranges": {"pruned/baseline": [0.49, 0.52]}}
    text = file_table(result)
    assert text.startswith("p.onnx (bat 0.7) vs u.onnx (none) on ort (cpu), batch 1")
    assert "| pruned | 1.00 | 1.50 | 2.00 | 1000.0 | 197 -> 139 |" in text and "| baseline | 2.00 |" in text
    assert text.endswith("pruned / baseline: 0.500 (range over 3 processes 0.490..0.520)")


def test_two_engines_run_on_trt_with_their_sidecars_metadata(tmp_path):
    for name, method, tokens in (("p", "bat", [65, 46]), ("u", "none", [65])):
        (tmp_path / f"{name}.engine").write_bytes(b"x")
        meta = {"preprocessing": {"input_size": [3, 32, 32]}, "onnx": {"batch": 2}, "weights": "random",
                "reduction": {"method": method, "keep_rate": 0.7, "stage_tokens": tokens}, "model": {"name": name}}
        (tmp_path / f"{name}.engine.json").write_text(json.dumps({"trt_version": "10.3", "metadata": meta}))
    specs, described, batch, shape = plan(str(tmp_path / "p.engine"), str(tmp_path / "u.engine"), None, None, 2)
    assert {s.backend for s in specs.values()} == {"trt"} and batch == 2 and shape == (3, 32, 32)
    assert described["pruned"]["stage_tokens"] == [65, 46] and described["baseline"]["name"] == "u"
