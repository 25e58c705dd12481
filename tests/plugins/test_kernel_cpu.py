"""The fused BAT merge kernel's logic (plugins/tdm_merge/batMerge.h), compiled for the CPU, against the PyTorch
reference (tdm_edge.reduce.patch.reduce_tokens, method "bat"): outputs and every selection."""

from __future__ import annotations

import pytest
import torch

from tdm_edge.reduce import merge
from tdm_edge.reduce.patch import AttentionOutput, reduce_tokens
from tdm_edge.reduce.schedule import Stage, build_schedule

from .cpu_kernel import CpuKernel, build, compiler


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> CpuKernel:
    if compiler() is None:
        pytest.skip("no host C++ compiler (g++ or clang++) to build the CPU kernel")
    return CpuKernel(build(tmp_path_factory.mktemp("kernel_cpu")))


def reference(x: torch.Tensor, w: torch.Tensor, stage: Stage) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PyTorch stage and its selections, computed the way reduce_tokens computes them."""
    out = reduce_tokens(x, AttentionOutput(None, w, None), stage)
    order = merge.argsort_desc(w)  # [B, N-1]
    att, inatt = order[:, :stage.keep], order[:, stage.keep:]
    x_a, x_b, x_in = (merge.gather_tokens(x, i, offset=1) for i in (att[:, 0::2], att[:, 1::2], inatt))
    match = merge.bipartite_match(x_a, x_b, stage.pairs)
    labels = merge.dpc_knn(x_in, stage.clusters, stage.knn)
    return out, {"order": order, "src": match.src, "dst": match.dst, "unm": match.unm, "labels": labels}


def bat_stage(n: int, keep: int, pairs: int, clusters: int, knn: int = 5) -> Stage:
    return Stage(block=0, method="bat", n_in=n, n_out=1 + keep - pairs + clusters, keep=keep, pairs=pairs,
                 clusters=clusters, knn=knn)


def check(kernel: CpuKernel, x: torch.Tensor, w: torch.Tensor, stage: Stage, atol: float = 1e-5) -> None:
    got, sel = kernel(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn)
    want, ref = reference(x, w, stage)
    for name, value in ref.items():
        assert torch.equal(sel[name], value), f"selection {name} differs"
    # cluster m is centred on the m-th best-scoring token, which carries label m
    centres, labels = sel["centres"], sel["labels"]
    assert torch.equal(labels.gather(1, centres), torch.arange(stage.clusters).expand_as(centres))
    assert got.shape == want.shape == (x.shape[0], stage.n_out, x.shape[2])
    torch.testing.assert_close(got, want, atol=atol, rtol=1e-5)


def test_random_tokens_batch(kernel):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 65, 32, generator=g)
    w = torch.rand(3, 64, generator=g).softmax(-1)
    check(kernel, x, w, bat_stage(65, keep=45, pairs=5, clusters=5))
    check(kernel, x, w, bat_stage(65, keep=20, pairs=7, clusters=11, knn=3))  # M != r, several B partners


def test_exact_ties_break_by_index(kernel):
    """Integer tokens (every dot product exact), repeated tokens and repeated importances: ties everywhere."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-2, 3, (2, 41, 8), generator=g).float()
    x[:, 20:30] = x[:, 5:15]  # duplicates: equal similarities, zero distances, equal densities
    w = torch.randint(1, 5, (2, 40), generator=g).float() / 8  # few distinct importances
    stage = bat_stage(41, keep=24, pairs=6, clusters=6)
    check(kernel, x, w, stage)
    _, sel = kernel(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn)
    ties = (w.unsqueeze(2) == w.unsqueeze(1)).sum() - w.numel()
    assert ties > 0 and (sel["order"] != torch.arange(40)).any()  # the case really has ties to break


def test_deit_small_stages(kernel):
    """The three stages of DeiT-S at keep rate 0.7 (197 -> 139 -> 98 -> 69 tokens, C = 384), batch 2."""
    schedule = build_schedule(197, 12, "bat", 0.7, None, 0.25, 5, None)
    assert schedule.stage_tokens == [197, 139, 98, 69]
    g = torch.Generator().manual_seed(2)
    for stage in schedule.stages:
        x = torch.randn(2, stage.n_in, 384, generator=g)
        w = (torch.randn(2, stage.n_in - 1, generator=g) * 2).softmax(-1)
        check(kernel, x, w, stage)


def test_nothing_inattentive(kernel):
    """keep = n-1: no clusters; with r = 0 every attentive token passes through unchanged (B then A order)."""
    x = torch.randn(1, 9, 4, generator=torch.Generator().manual_seed(3))
    w = torch.tensor([[0.1, 0.5, 0.2, 0.9, 0.3, 0.05, 0.7, 0.4]])
    got, sel = kernel(x, w, keep=8, pairs=0, clusters=0)
    order = merge.argsort_desc(w)[0]
    assert torch.equal(sel["order"][0], order)
    torch.testing.assert_close(got[0], torch.cat([x[0, :1], x[0, 1 + order[1::2]], x[0, 1 + order[0::2]]]))


@pytest.mark.parametrize("sizes, message", [((9, 4, 9, 0, 0), "keep"), ((9, 4, 4, 3, 1), "pairs"),
                                            ((9, 4, 4, 2, 5), "clusters")])
def test_invalid_sizes_rejected(kernel, sizes, message):
    n, c, keep, pairs, clusters = sizes
    with pytest.raises(ValueError, match=message):
        kernel(torch.zeros(1, n, c), torch.zeros(1, n - 1), keep, pairs, clusters)
