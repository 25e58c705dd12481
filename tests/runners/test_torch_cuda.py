"""The torch-cuda backend: its CPU-side behaviour here; its GPU results (marked gpu) where CUDA exists."""

import sys
import types

import numpy as np
import pytest
import torch

from tdm_edge.errors import UsageError
from tdm_edge.reduce.patch import patch_vit
from tdm_edge.runners.base import TensorMeta
from tdm_edge.runners.torch_cuda import FUSED_MODULE, TorchCudaRunner, apply_fused_merge

from ..conftest import tiny_vit

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none here)")


@pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without CUDA")
def test_without_cuda_one_line():
    with pytest.raises(UsageError, match=r"needs a CUDA GPU \(torch.cuda.is_available\(\) is False here\)"):
        TorchCudaRunner(tiny_vit(), batch=2).activate()


def test_static_shapes_only():
    dynamic = [TensorMeta("input", np.dtype(np.float32), (None, 3, None, 32))]
    with pytest.raises(UsageError, match="static input shapes"):
        TorchCudaRunner(tiny_vit(), input_metadata=dynamic)
    assert TorchCudaRunner(tiny_vit(), batch=4).input_metadata_impl()[0].shape == (4, 3, 32, 32)
    assert TorchCudaRunner(tiny_vit()).input_metadata_impl()[0].shape == (None, 3, 32, 32)  # the first feed's


def test_fused_merge_seam(monkeypatch):
    model = patch_vit(tiny_vit(), "bat", 0.7)
    monkeypatch.setitem(sys.modules, FUSED_MODULE, None)  # not importable
    assert apply_fused_merge(model) == 0
    with pytest.raises(UsageError, match="fused merge op is not available"):
        apply_fused_merge(model, required=True)
    seen = []
    fake_fused = types.ModuleType(FUSED_MODULE)  # FakeFusedModule: a stand-in for the kernel issue's module
    fake_fused.apply = lambda m: seen.append(m) or 3
    monkeypatch.setitem(sys.modules, FUSED_MODULE, fake_fused)
    assert apply_fused_merge(model) == 3 and seen == [model]


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("graph", [False, True])
def test_fp32_equals_onnx_runtime_and_fp16_keeps_top1(tmp_path, graph):
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.runners.onnxrt import OnnxRuntimeRunner

    model = patch_vit(tiny_vit(), "bat", 0.7)
    export_onnx(model, tmp_path / "m.onnx", batch=4, verify=False)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).numpy()
    with OnnxRuntimeRunner(tmp_path / "m.onnx") as ort:
        ref = ort.infer({"input": x})["logits"]
    with TorchCudaRunner(model, fp16=False, cuda_graph=graph) as runner:  # batch from the first feed
        out = runner.infer({"input": x})["logits"]
        out2 = runner.infer({"input": x[::-1].copy()})["logits"]  # the graph reads the new input
        one = runner.infer({"input": x[:1].copy()})["logits"]  # another batch: captured again
    np.testing.assert_allclose(one, out[:1], atol=1e-4)
    assert np.abs(out - ref).max() <= 1e-4
    np.testing.assert_allclose(out2, out[::-1], atol=1e-4)
    with TorchCudaRunner(model, fp16=True, cuda_graph=graph, batch=4) as runner:
        half = runner.infer({"input": x})["logits"]
    assert half.dtype == np.float32 and np.abs(half - ref).max() <= 1e-2
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2e-2  # random weights: only rows whose top-1 is clear of fp16's error
    assert (half.argmax(1) == ref.argmax(1))[clear].all()
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
