"""Patching timm ViTs: counts, exactness at keep rate 1, unchanged parameters, each method's semantics."""

import copy

import pytest
import timm
import torch

import tdm_edge.reduce.models  # noqa: F401  (registers tdm_* variants)
from tdm_edge.reduce import merge
from tdm_edge.reduce.patch import PatchError, attention_with_importance, patch_vit, reduce_tokens
from tdm_edge.reduce.schedule import ScheduleError, Stage

from ..conftest import tiny_vit
from .test_merge import _matching_reference


def _block_outputs(model, image):
    shapes = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(o.shape[1])) for b in model.blocks]
    with torch.no_grad():
        logits = model(image)
    for h in hooks:
        h.remove()
    return logits, shapes


@pytest.mark.parametrize("method", ["bat", "none"])
def test_keep_rate_one_gives_identical_logits(method):
    model = tiny_vit()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(image)
    patch_vit(model, method=method, keep_rate=1.0)
    with torch.no_grad():
        assert (model(image) - expected).abs().max() <= 1e-6


def test_patching_changes_no_parameter_and_keeps_deit_small_size():
    model = timm.create_model("deit_small_patch16_224")
    before = copy.deepcopy(model.state_dict())
    patch_vit(model, keep_rate=0.7)
    after = model.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(p.numel() for p in model.parameters()) == 22_050_664
    assert model.tdm_schedule.stage_tokens == [197, 139, 98, 69]


@pytest.mark.parametrize("method", ["bat", "evit", "tome", "random"])
def test_every_block_outputs_the_scheduled_count(method):
    model = patch_vit(tiny_vit(depth=6), method=method, keep_rate=0.6, prune_blocks=(1, 3, 4))
    logits, shapes = _block_outputs(model, torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 10)
    assert shapes == model.tdm_schedule.block_tokens[1:] + [model.tdm_schedule.final_tokens]
    assert shapes[-1] < 65


def test_bat_stage_keeps_cls_first_and_matches_a_composed_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 21, 8)
    importance = torch.rand(2, 20).softmax(-1)
    stage = Stage(block=0, method="bat", n_in=21, n_out=15, keep=14, pairs=3, clusters=3, knn=3)
    out = reduce_tokens(x, _fake_attention(importance, x), stage)
    assert out.shape == (2, 15, 8)
    assert torch.equal(out[:, 0], x[:, 0])
    for b in range(2):
        order = sorted(range(20), key=lambda i: (-float(importance[b, i]), i))
        att, inatt = order[:14], order[14:]
        xa, wa = x[b, 1:][att], importance[b, att]
        xi, wi = x[b, 1:][inatt], importance[b, inatt]
        groups = _matching_reference(xa, 3)  # B tokens with their matches, then unmatched A tokens
        labels = merge.dpc_knn(xi[None], 3, 3)[0]
        expected = [(xa[g] * wa[g, None]).sum(0) / wa[g].sum() for g in groups]
        expected += [(xi * ((labels == c) * wi)[:, None]).sum(0) / ((labels == c) * wi).sum() for c in range(3)]
        assert torch.allclose(out[b, 1:], torch.stack(expected), atol=1e-6)


def _fake_attention(importance, x):
    from tdm_edge.reduce.patch import AttentionOutput
    return AttentionOutput(x, importance, x)


def test_evit_keeps_the_top_tokens_and_fuses_the_rest_with_raw_attention():
    torch.manual_seed(1)
    x = torch.randn(1, 9, 4)
    importance = torch.tensor([[0.3, 0.05, 0.2, 0.1, 0.02, 0.15, 0.08, 0.1]])
    stage = Stage(block=0, method="evit", n_in=9, n_out=5, keep=4)
    out = reduce_tokens(x, _fake_attention(importance, x), stage)
    top = [0, 2, 5]  # top K-1 = 3 by importance (0.3, 0.2, 0.15)
    assert torch.equal(out[0, 1:4], x[0, 1:][top])
    rest = [i for i in range(8) if i not in top]
    fused = sum(importance[0, i] * x[0, 1 + i] for i in rest)
    assert torch.allclose(out[0, 4], fused, atol=1e-6)


def test_tome_merges_r_tokens_per_block_with_key_metric():
    model = patch_vit(tiny_vit(), method="tome", tome_r=8)
    assert model.tdm_schedule.stage_tokens == [65, 57, 49, 41, 33]
    x = torch.randn(1, 65, 32)
    out = attention_with_importance(model.blocks[0].attn, x, importance=False, metric=True)
    assert out.metric.shape == (1, 65, 16) and out.importance is None  # keys averaged over the 2 heads
    attn = model.blocks[0].attn
    qkv = attn.qkv(x).reshape(1, 65, 3, 2, 16).permute(2, 0, 3, 1, 4)
    assert torch.allclose(out.metric, qkv[1].mean(1), atol=1e-6)
    full = ((qkv[0] @ qkv[1].transpose(-2, -1)) * attn.scale).softmax(-1)
    for fused in (True, False):
        attn.fused_attn = fused
        got = attention_with_importance(attn, x)
        assert torch.allclose(got.importance, full[:, :, 0, 1:].mean(1), atol=1e-6)
        assert torch.allclose(got.x, attn(x), atol=1e-5)


def test_outputs_are_deterministic_and_random_differs_from_bat():
    model = patch_vit(tiny_vit(), keep_rate=0.5)
    image = torch.zeros(2, 3, 32, 32)  # constant image: every patch token ties
    with torch.no_grad():
        a, b = model(image), model(image)
    assert torch.equal(a, b)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        bat = model(image)
        patch_vit(model, method="random", keep_rate=0.5)
        rand = model(image)
    assert not torch.allclose(bat, rand)


def test_gradients_reach_every_weight():
    model = patch_vit(tiny_vit(), keep_rate=0.5).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []


def test_any_image_size_and_registered_variants():
    model = timm.create_model("tdm_deit_tiny_patch16_224", img_size=160, keep_rate=0.5, method="evit")
    assert model.tdm_schedule.stage_tokens == [101, 51, 26, 14]
    assert model(torch.randn(1, 3, 160, 160)).shape == (1, 1000)
    assert not hasattr(timm.create_model("deit_tiny_patch16_224"), "tdm_schedule")  # timm's names untouched
    with pytest.raises(ValueError, match="never downloads"):
        timm.create_model("tdm_deit_tiny_patch16_224", pretrained=True)


def test_non_vit_and_unsupported_models_are_refused():
    with pytest.raises(PatchError, match="not a timm VisionTransformer"):
        patch_vit(torch.nn.Linear(3, 3))
    with pytest.raises(PatchError, match="prefix tokens"):
        patch_vit(timm.create_model("deit_tiny_distilled_patch16_224", img_size=32))  # the refusal needs no 224 px
    with pytest.raises(PatchError, match="class token"):
        patch_vit(timm.create_model("vit_tiny_patch16_224", class_token=False, global_pool="avg", img_size=32))
    with pytest.raises(ScheduleError, match="out of range"):
        patch_vit(tiny_vit(), prune_blocks=(4,))
