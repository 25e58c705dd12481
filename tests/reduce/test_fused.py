"""``torch.ops.tdm_edge.bat_merge``: the fused stage as a PyTorch op. On the CPU it is the decomposed reference and
must equal the CPU build of the CUDA kernel's logic; on a GPU (skipped here without one) it is the kernel itself."""

from __future__ import annotations

import contextlib

import pytest
import torch

from tdm_edge.reduce import fused
from tdm_edge.reduce.patch import AttentionOutput, patch_vit, reduce_tokens
from tdm_edge.reduce.schedule import build_schedule

from ..conftest import tiny_vit
from ..plugins.cpu_kernel import CpuKernel, build, compiler


def _deit_small_stage(batch: int, seed: int = 0, dtype=torch.float32):
    stage = build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None).stages[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 197, 384, generator=g).to(dtype)
    w = (torch.randn(batch, 196, generator=g) * 2).softmax(-1).to(dtype)
    return stage, x, w


@pytest.mark.skipif(compiler() is None, reason="no host C++ compiler to build the CPU kernel")
@contextlib.contextmanager
def counted_stages():
    """``fused.fused_stage`` wrapped to record each call's stage input size (``n_in``) in the yielded list."""
    calls, original = [], fused.fused_stage

    def counting(*args):
        calls.append(args[2].n_in)
        return original(*args)

    fused.fused_stage = counting
    try:
        yield calls
    finally:
        fused.fused_stage = original


def test_op_on_cpu_equals_the_kernel_logic(tmp_path):
    stage, x, w = _deit_small_stage(batch=2)
    got = fused.fused_stage(x, w, stage)  # [2, 139, 384]
    kernel_out, _ = CpuKernel(build(tmp_path))(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn)
    assert got.shape == (2, 139, 384)
    torch.testing.assert_close(got, kernel_out, atol=1e-5, rtol=1e-5)
    assert torch.equal(got, reduce_tokens(x, AttentionOutput(None, w, None), stage))


def test_fake_shape_and_fused_model():
    stage, x, w = _deit_small_stage(batch=3)
    meta = torch.ops.tdm_edge.bat_merge(x.to("meta"), w.to("meta"), *fused.stage_sizes(stage, 384))
    assert meta.shape == (3, 139, 384) and meta.device.type == "meta"
    model = patch_vit(tiny_vit(), method="bat", keep_rate=0.7)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with counted_stages() as calls, torch.inference_mode(), fused.fused_stages():
        got = model(images)
    with torch.inference_mode():
        want = model(images)
    assert calls == model.tdm_schedule.stage_tokens[:-1]  # every BAT stage went through the op
    assert torch.equal(got, want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.float16, 1e-2)])
def test_cuda_kernel_equals_reference(dtype, atol):
    assert fused.cuda_extension() is not None, "the CUDA kernel did not build"
    stage, x, w = _deit_small_stage(batch=4, dtype=dtype)
    got = fused.fused_stage(x.cuda(), w.cuda(), stage).cpu().float()
    want = reduce_tokens(x.float(), AttentionOutput(None, w.float(), None), stage)
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


def test_apply_switches_the_bat_stages_for_good():
    model = patch_vit(tiny_vit(), method="bat", keep_rate=0.7)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = model(images)
    assert fused.apply(model) == 3 and fused.apply(model) == 3  # idempotent
    with counted_stages() as calls, torch.inference_mode():
        got = model(images)
    assert calls == model.tdm_schedule.stage_tokens[:-1] and torch.equal(got, want)
    assert fused.apply(patch_vit(tiny_vit(), method="evit", keep_rate=0.7)) == 0
