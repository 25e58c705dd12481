"""The fused BAT merge kernel's logic (plugins/tdm_merge/batMerge.h), compiled for the CPU, against the PyTorch
reference (tdm_edge.reduce.patch.reduce_tokens, method "bat"): outputs and every selection."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tdm_edge.reduce import merge
from tdm_edge.reduce.patch import AttentionOutput, reduce_tokens
from tdm_edge.reduce.schedule import Stage, build_schedule

from .cpu_kernel import KERNEL_DIR, BatSizes, CpuKernel, build, compiler


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


def check(kernel: CpuKernel, x: torch.Tensor, w: torch.Tensor, stage: Stage, atol: float = 1e-5,
          poison: int = 0xFF) -> torch.Tensor:
    """Selections identical to the reference's, outputs equal within atol (NaN where the reference has NaN)."""
    got, sel = kernel(x, w, stage.keep, stage.pairs, stage.clusters, stage.knn, poison=poison)
    want, ref = reference(x, w, stage)
    for name, value in ref.items():
        assert torch.equal(sel[name], value), f"selection {name} differs"
    if torch.isfinite(x).all():  # cluster m is centred on the m-th best-scoring token, which carries label m
        centres, labels = sel["centres"], sel["labels"]
        assert torch.equal(labels.gather(1, centres), torch.arange(stage.clusters).expand_as(centres))
    assert got.shape == want.shape == (x.shape[0], stage.n_out, x.shape[2])
    torch.testing.assert_close(got, want, atol=atol, rtol=1e-5, equal_nan=True)
    return got


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


@pytest.mark.parametrize("poison", [0xFF, 0x7F])
def test_nan_importance(kernel, poison):
    """NaN importances sort first (torch.sort, descending), so they are attentive; their tokens' merges are NaN
    in the reference too. Ranks stay a permutation: nothing read from an unwritten (poisoned) slot."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 33, 16, generator=g)
    w = torch.rand(2, 32, generator=g)
    w[0, [3, 7, 20]] = float("nan")
    w[1] = float("nan")  # every importance NaN: index order everywhere, every merged value NaN
    got = check(kernel, x, w, bat_stage(33, keep=20, pairs=5, clusters=4), poison=poison)
    # all NaN: merged B tokens (rows 1..10) and clusters (16..19) NaN, CLS and unmatched A tokens (11..15) exact
    assert got[1, 1:11].isnan().all() and got[1, 16:].isnan().all()
    _, sel = kernel(x, w, 20, 5, 4, poison=poison)
    assert torch.equal(sel["order"][1], torch.arange(32))  # NaNs tie: index order
    assert torch.equal(got[1, 11:16], x[1, 1 + 2 * sel["unm"][1]])  # A token t is patch order[2t] = 2t
    assert got[0].isnan().any() and got[0].isfinite().any()


@pytest.mark.parametrize("poison", [0xFF, 0x7F])
def test_infinite_and_equal_importance(kernel, poison):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 33, 16, generator=g)
    w = torch.rand(3, 32, generator=g)
    w[0, [1, 9]], w[0, [4, 30]] = float("inf"), float("-inf")
    w[1] = 0.25  # all equal: the index order
    w[2, ::2] = 0.0  # half exactly zero (and -0.0 among them: equal to +0.0)
    w[2, 4] = -0.0
    check(kernel, x, w, bat_stage(33, keep=16, pairs=6, clusters=5), poison=poison)
    _, sel = kernel(x, w, 16, 6, 5, poison=poison)
    assert torch.equal(sel["order"][1], torch.arange(32))


@pytest.mark.parametrize("poison", [0xFF, 0x7F])
def test_zero_and_duplicate_tokens(kernel, poison):
    """Zero attentive tokens give cosine 0/0 = NaN (the reference's too): their edges rank first and their partner
    is the first B token; zero and duplicate inattentive tokens give zero distances and equal densities."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 41, 16, generator=g)
    w = torch.linspace(1.0, 0.1, 40).expand(2, 40).clone()  # patch p has rank p: sets known in advance
    x[0, 1 + 2 * torch.arange(0, 6)] = 0.0  # A tokens 0..5 all zero
    x[0, 1 + 2 * 7 + 1] = 0.0  # one zero B token: every A token's scores with it are NaN
    x[1, 1 + torch.arange(24, 40)] = 0.0  # most inattentive tokens zero
    x[1, 1 + torch.arange(2, 10)] = x[1, 1 + torch.arange(10, 18)]  # duplicate attentive tokens
    stage = bat_stage(41, keep=24, pairs=7, clusters=5)
    got = check(kernel, x, w, stage, poison=poison)
    assert got.isfinite().all()  # finite weights: a NaN cosine changes the selection, not the values


def test_non_finite_tokens(kernel):
    """Inf and NaN token values (fp16 overflow): NaN similarities and distances follow torch's argmax, topk,
    amin and clamp rules; every index stays in range and the outputs equal the reference's, NaNs included."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 33, 8, generator=g)
    w = torch.linspace(1.0, 0.1, 32).expand(2, 32).clone()
    x[0, 1 + 3, 2] = float("inf")  # an attentive token
    x[0, 1 + 25, 0] = float("nan")  # an inattentive token
    x[1, 1 + 22] = float("inf")
    check(kernel, x, w, bat_stage(33, keep=16, pairs=4, clusters=5))


@pytest.mark.parametrize("sizes, message", [((9, 4, 9, 0, 0), "keep"), ((9, 4, 8, 0, 0), "keep"),
                                            ((9, 4, 1, 0, 1), "keep"), ((9, 4, 4, 3, 1), "pairs"),
                                            ((9, 4, 4, 2, 5), "clusters"), ((9, 4, 4, 2, 0), "clusters"),
                                            ((16386, 4, 4, 2, 1), "16385")])
def test_invalid_sizes_rejected(kernel, sizes, message):
    """Stages the reference cannot compute (keep < 2: no B token; keep = n-1: nothing to cluster) and sizes
    past the bound are refused before anything runs."""
    n, c, keep, pairs, clusters = sizes
    with pytest.raises(ValueError, match=message):
        kernel(torch.zeros(1, n, c), torch.zeros(1, n - 1), keep, pairs, clusters)


@pytest.mark.slow
@pytest.mark.skipif(compiler() is None, reason="no host C++ compiler (g++ or clang++) to build the sanitizer driver")
def test_degenerate_inputs_under_asan_ubsan(tmp_path):
    """tests/plugins/sanitize_driver.cpp under AddressSanitizer + UndefinedBehaviorSanitizer: 64 runs (NaN, +-Inf
    and equal importances, zero, duplicate and non-finite tokens; four stage shapes up to DeiT-S stage 1; workspace
    poisoned with 0xFF and 0x7F), exact-size buffers, every selection a permutation or in range."""
    exe = tmp_path / "sanitize_driver"
    cmd = [compiler(), "-std=c++17", "-O1", "-g", "-ffp-contract=off", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", "-I", str(KERNEL_DIR),
           str(Path(__file__).with_name("sanitize_driver.cpp")), "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    if built.returncode != 0 and "sanitize" in built.stderr and "cannot find" in built.stderr:
        pytest.skip(f"the compiler has no sanitizer runtime: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stderr[-2000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert run.stdout.strip() == "cases 64 ok" and run.stderr == ""


def test_lint_size_rule_is_the_kernels(kernel):
    """lint/plugin_check.size_error (what `check` and the plugin export say) == the kernel's validateSizes, message
    for message, over a grid of sizes around every boundary."""
    import itertools

    from tdm_edge.lint.plugin_check import MAX_CHANNELS, MAX_TOKENS, SIZE_ATTRS, size_error

    for n, c, keep, pairs, clusters, knn in itertools.product(
            (2, 3, 5, 9, MAX_TOKENS, MAX_TOKENS + 1), (0, 1, MAX_CHANNELS, MAX_CHANNELS + 1), range(0, 9),
            (-1, 0, 1, 2, 3, 5), (0, 1, 2, 4, 7), (0, 1)):
        sizes = BatSizes(n, c, keep, pairs, clusters, knn)
        theirs = kernel.lib.tdm_bat_size_error(ctypes.byref(sizes)).decode()
        ours = size_error(dict(zip(SIZE_ATTRS, (n, c, keep, pairs, clusters, knn))))
        assert (ours or "ok") == theirs, (n, c, keep, pairs, clusters, knn)
