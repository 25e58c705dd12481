"""``torch.ops.tdm_edge.bat_merge``: the fused stage as a PyTorch op. On the CPU it is the decomposed reference; on a
GPU (skipped here without one) it is the CUDA kernel. Every value check compares with a path independent of the code
under test: the C++ CPU build of the kernel's phases (tests/plugins/cpu_kernel.py) against the PyTorch reference, or
the CUDA kernel against both."""

from __future__ import annotations

import contextlib

import pytest
import torch

from tdm_edge.reduce import fused
from tdm_edge.reduce.patch import AttentionOutput, patch_vit, reduce_tokens
from tdm_edge.reduce.schedule import build_schedule

from ..conftest import tiny_vit
from ..plugins.cpu_kernel import CpuKernel, build, compiler

NO_COMPILER = "no host C++ compiler (g++ or clang++) to build the CPU kernel"


def _deit_small_stage(batch: int, seed: int = 0, dtype=torch.float32):
    stage = build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None).stages[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 197, 384, generator=g).to(dtype)
    w = (torch.randn(batch, 196, generator=g) * 2).softmax(-1).to(dtype)
    return stage, x, w


@contextlib.contextmanager
def counted_stages(kernel: CpuKernel | None = None):
    """``fused.fused_stage`` wrapped to record each call's stage input size (``n_in``) in the yielded list; with
    ``kernel``, every stage is computed by that C++ CPU build instead of the op."""
    calls, original = [], fused.fused_stage

    def counting(x, importance, stage):
        calls.append(stage.n_in)
        if kernel is None:
            return original(x, importance, stage)
        return kernel(x, importance, stage.keep, stage.pairs, stage.clusters, stage.knn)[0]

    fused.fused_stage = counting
    try:
        yield calls
    finally:
        fused.fused_stage = original


@pytest.mark.skipif(compiler() is None, reason=NO_COMPILER)
def test_op_on_cpu_equals_the_kernel_logic(tmp_path):
    stage, x, w = _deit_small_stage(batch=2)
    got = fused.fused_stage(x, w, stage)  # [2, 139, 384]: the op (on the CPU, the decomposed reference)
    kernel_out, _ = CpuKernel(build(tmp_path))(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn)
    assert got.shape == (2, 139, 384)
    torch.testing.assert_close(got, kernel_out, atol=1e-5, rtol=1e-5)


def test_fake_shape():
    stage, x, w = _deit_small_stage(batch=3)
    meta = torch.ops.tdm_edge.bat_merge(x.to("meta"), w.to("meta"), *fused.stage_sizes(stage, 384))
    assert meta.shape == (3, 139, 384) and meta.device.type == "meta"


@pytest.mark.skipif(compiler() is None, reason=NO_COMPILER)
def test_fused_model_through_the_cpu_kernel_equals_the_model(tmp_path):
    """Under ``fused_stages()`` every BAT stage goes through the op's seam; with the C++ kernel behind that seam, the
    whole model equals the unfused PyTorch model."""
    kernel = CpuKernel(build(tmp_path))
    model = patch_vit(tiny_vit(), method="bat", keep_rate=0.7)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with counted_stages(kernel) as calls, torch.inference_mode(), fused.fused_stages():
        got = model(images)
    with torch.inference_mode():
        want = model(images)
    assert calls == model.tdm_schedule.stage_tokens[:-1]  # every BAT stage went through the op
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(compiler() is None, reason=NO_COMPILER)
def test_apply_switches_the_bat_stages_for_good(tmp_path):
    kernel = CpuKernel(build(tmp_path))
    model = patch_vit(tiny_vit(), method="bat", keep_rate=0.7)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = model(images)
    assert fused.apply(model) == 3 and fused.apply(model) == 3  # idempotent
    with counted_stages(kernel) as calls, torch.inference_mode():
        got = model(images)
    assert calls == model.tdm_schedule.stage_tokens[:-1]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert fused.apply(patch_vit(tiny_vit(), method="evit", keep_rate=0.7)) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.float16, 1e-2)])
def test_cuda_kernel_equals_reference(dtype, atol):
    assert fused.cuda_extension() is not None, "the CUDA kernel did not build"
    stage, x, w = _deit_small_stage(batch=4, dtype=dtype)
    got = fused.fused_stage(x.cuda(), w.cuda(), stage).cpu().float()
    want = reduce_tokens(x.float(), AttentionOutput(None, w.float(), None), stage)
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(compiler() is None, reason=NO_COMPILER)
def test_cuda_kernel_rounds_like_the_cpu_build(tmp_path):
    """docs/kernel.md's rounding claim: in fp32 the GPU's outputs are the CPU build's, bit for bit (all three
    DeiT-S stages at batch 64 and batch 1)."""
    assert fused.cuda_extension() is not None, "the CUDA kernel did not build"
    kernel = CpuKernel(build(tmp_path))
    g = torch.Generator().manual_seed(3)
    for batch in (1, 64):
        for stage in build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None).stages:
            x = torch.randn(batch, stage.n_in, 384, generator=g)
            w = (torch.randn(batch, stage.n_in - 1, generator=g) * 2).softmax(-1)
            got = fused.fused_stage(x.cuda(), w.cuda(), stage).cpu()
            want, _ = kernel(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn)
            assert torch.equal(got, want), f"stage {stage.n_in} at batch {batch} differs"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_kernel_on_degenerate_inputs():
    """NaN and equal importances, zero tokens on the GPU (whose workspace is never zeroed): the reference's
    shape, its finite values within 1e-5 and NaN where it has NaN; no illegal address (the sync would raise)."""
    assert fused.cuda_extension() is not None, "the CUDA kernel did not build"
    stage, x, w = _deit_small_stage(batch=3)
    w[0, ::7] = float("nan")
    w[1] = 0.5
    x[2, 1::2] = 0.0
    got = fused.fused_stage(x.cuda(), w.cuda(), stage)
    torch.cuda.synchronize()
    want = reduce_tokens(x, AttentionOutput(None, w, None), stage)
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5, equal_nan=True)
