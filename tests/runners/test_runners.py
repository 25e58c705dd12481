"""The shared runner interface: lifecycle, feed checks, timing, PyTorch and ONNX Runtime agreeing."""

import numpy as np
import pytest
import torch

from tdm_edge.errors import UsageError
from tdm_edge.export.onnx_export import export_onnx
from tdm_edge.reduce.patch import patch_vit
from tdm_edge.runners import (FeedError, OnnxRuntimeRunner, PyTorchRunner, Runner, RunnerError, TensorMeta,
                              check_feed)

from ..conftest import tiny_vit

META = [TensorMeta("input", np.dtype(np.float32), (None, 3, 8, 8))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = patch_vit(tiny_vit(patch_size=8), method="bat", keep_rate=0.7, prune_blocks=(1, 2))
    path = tmp_path_factory.mktemp("runners") / "m.onnx"
    export_onnx(model, path, dynamic_batch=True, verify=False)
    return model, path


@pytest.mark.parametrize("feed, message", [
    ({}, r"missing \['input'\].*expected input: float32\[\?, 3, 8, 8\]"),
    ({"input": np.zeros((1, 3, 8, 8), np.float32), "extra": np.zeros(1)}, r"unexpected \['extra'\]"),
    ({"input": np.zeros((1, 3, 8, 8), np.float64)}, "dtype float64, expected input: float32"),
    ({"input": np.zeros((1, 3, 8, 9), np.float32)}, r"shape \[1, 3, 8, 9\]"),
    ({"input": np.zeros((3, 8, 8), np.float32)}, r"shape \[3, 8, 8\]"),
    ({"input": [[0.0]]}, "is a list, expected a numpy array"),
])
def test_bad_feeds_fail_in_one_line(feed, message):
    with pytest.raises(FeedError, match=message) as err:
        check_feed(feed, META)
    assert "\n" not in str(err.value) and isinstance(err.value, UsageError)


def test_dynamic_dimension_accepts_any_batch():
    for batch in (1, 7):
        check_feed({"input": np.zeros((batch, 3, 8, 8), np.float32)}, META)


class Doubler(Runner):
    """The smallest backend: what a TensorRT runner will implement."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def activate_impl(self):
        self.calls.append("activate")

    def deactivate_impl(self):
        self.calls.append("deactivate")

    def input_metadata_impl(self):
        return META

    def infer_impl(self, feed):
        return {"out": feed["input"] * 2}


def test_lifecycle_and_timing():
    runner = Doubler()
    with pytest.raises(RunnerError, match="needs an active runner"):
        runner.infer({"input": np.ones((1, 3, 8, 8), np.float32)})
    assert runner.last_inference_time() is None
    with runner as r:
        assert r is runner and runner.is_active
        with pytest.raises(RunnerError, match="already active"):
            runner.activate()
        out = runner.infer({"input": np.ones((2, 3, 8, 8), np.float32)})
        assert out["out"].sum() == 2 * 2 * 3 * 8 * 8
        assert runner.last_inference_time() > 0
    assert not runner.is_active and runner.calls == ["activate", "deactivate"]


def test_pytorch_runner_returns_the_models_logits_and_restores_training_mode():
    model = tiny_vit(patch_size=8).train()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with PyTorchRunner(model) as runner:
        assert [m.describe() for m in runner.input_metadata()] == ["input: float32[?, 3, 32, 32]"]
        out = runner.infer({"input": x})
        with torch.no_grad():
            assert torch.equal(torch.from_numpy(out["logits"]), model(torch.from_numpy(x)))
    assert model.training


def test_onnxruntime_runner_matches_pytorch_runner(exported):
    model, path = exported
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32), dtype=np.float32)
    with PyTorchRunner(model) as pt:
        expected = pt.infer({"input": x})["logits"]
    for source in (path, path.read_bytes()):
        with OnnxRuntimeRunner(source, intra_op_threads=1) as ort_runner:
            meta = ort_runner.input_metadata()
            assert meta[0].name == "input" and meta[0].shape == (None, 3, 32, 32)
            out = ort_runner.infer({"input": x})
            assert list(out) == ["logits"] and np.abs(out["logits"] - expected).max() <= 1e-5
            with pytest.raises(FeedError, match="shape"):
                ort_runner.infer({"input": x[:, :, :16]})


def test_onnxruntime_runner_bad_model_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        OnnxRuntimeRunner(tmp_path / "missing.onnx").activate()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(UsageError, match="cannot load") as err:
        OnnxRuntimeRunner(bad).activate()
    assert "\n" not in str(err.value)
