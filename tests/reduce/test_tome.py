"""ToMe equals the algorithm of its authors (facebookresearch/ToMe, ``tome.patch.timm`` with ``prop_attn=True``).

The reference below is written from the paper (Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023) and
the reference implementation's ``bipartite_soft_matching(class_token=True)`` + ``merge_wavg``, step by step with
Python loops, independent of :mod:`tdm_edge.reduce.merge`:

1. attention with proportional attention: ``softmax(q k^T * scale + log(size))``;
2. metric = the keys averaged over heads; cosine similarity;
3. all tokens alternate into A (even positions, class token first) and B (odd positions);
4. every A token's best B partner (lower index on ties); the class token never merges;
5. the ``r`` A tokens with the best edges merge into their partners (lower A index on equal edges);
6. output: the unmatched A tokens in input order, then every B token; size-weighted means; sizes add up.
"""

import math

import pytest
import torch

from tdm_edge.reduce import merge
from tdm_edge.reduce.patch import SizeTrackingBlocks, TokenSizes, patch_vit

from ..conftest import tiny_vit


def _reference_merge(tokens, metric, sizes, r):
    """One ToMe step on one image: ``tokens [N, C]``, ``metric [N, d]``, ``sizes`` a list of N numbers."""
    n = tokens.shape[0]
    unit = metric / metric.norm(dim=-1, keepdim=True)
    a_set, b_set = list(range(0, n, 2)), list(range(1, n, 2))
    edges = []  # (similarity, partner, A token)
    for i in a_set:
        if i == 0:  # the class token is protected: it never merges
            edges.append((-math.inf, None, i))
            continue
        sims = [float(unit[i] @ unit[j]) for j in b_set]
        best = max(sims)
        edges.append((best, b_set[sims.index(best)], i))  # first best = lower B index on ties
    ranked = sorted(edges, key=lambda e: (-e[0], e[2]))  # best edges first, lower A index on ties
    merged, kept = ranked[:r], sorted(e[2] for e in ranked[r:])
    groups = [[i] for i in kept] + [[j] + [e[2] for e in merged if e[1] == j] for j in b_set]
    new_tokens = torch.stack([sum(sizes[t] * tokens[t] for t in g) / sum(sizes[t] for t in g) for g in groups])
    return new_tokens, [sum(sizes[t] for t in g) for g in groups]


def _reference_vit(model, image, r, prop_attn=True):
    """ToMe on a timm ViT, from its weights: ``(logits [B, classes], [sizes after every merging block])``."""
    x = model._pos_embed(model.patch_embed(image))  # [B, N, C]
    batch, n, channels = x.shape
    sizes = [[1] * n for _ in range(batch)]
    history = []
    for blk in model.blocks:
        attn, n = blk.attn, x.shape[1]
        heads = attn.num_heads
        qkv = torch.nn.functional.linear(blk.norm1(x), attn.qkv.weight, attn.qkv.bias)  # [B, N, 3C]
        q, k, v = qkv.reshape(batch, n, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)  # [B, H, N, d]
        logits = (q @ k.transpose(-2, -1)) * attn.scale  # [B, H, N, N]
        if prop_attn:
            logits = logits + torch.tensor(sizes, dtype=torch.float32).log()[:, None, None, :]
        y = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, n, channels)
        x = x + attn.proj(y)
        step = min(r, (n - 1) // 2)
        if step > 0:
            metric = k.mean(dim=1)  # [B, N, d]
            steps = [_reference_merge(x[b], metric[b], sizes[b], step) for b in range(batch)]
            x, sizes = torch.stack([s[0] for s in steps]), [s[1] for s in steps]
            history.append(sizes)
        x = x + blk.mlp(blk.norm2(x))
    return model.head(model.norm(x)[:, 0]), history


def _deit_like(seed=0, std=0.15):
    """A tiny DeiT-shaped ViT (class token, token pooling, 65 tokens) with random weights large enough that
    attention is far from uniform."""
    model = tiny_vit(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return model


def _sizes_per_block(model, image):
    """Run the blocks as ``model.blocks`` does, recording ``(tokens out, sizes after)`` of every block."""
    sizes, records = TokenSizes(), []
    x = model._pos_embed(model.patch_embed(image))
    for blk in model.blocks:
        x = blk(x, token_sizes=sizes)
        records.append((x.shape[1], sizes.value))
    return records


@pytest.mark.parametrize("r, fused", [(8, True), (8, False), (13, True), (40, False)])
def test_tome_equals_the_reference_algorithm(r, fused):
    model = _deit_like()
    image = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(r))
    with torch.no_grad():
        expected, history = _reference_vit(model, image, r)
        without_prop, _ = _reference_vit(model, image, r, prop_attn=False)
        patch_vit(model, method="tome", tome_r=r)
        for blk in model.blocks:
            blk.attn.fused_attn = fused
        got = model(image)
        records = _sizes_per_block(model, image)
    assert (got - expected).abs().max() <= 1e-5
    assert (without_prop - expected).abs().max() > 1e-2  # proportional attention matters at these weights
    merging = [size.tolist() for count, size in records if size is not None]
    assert merging[:len(history)] == history  # the same tokens merged, in the same order, in every block


def test_tome_equals_the_reference_under_exact_ties():
    # no position embedding and flat images: all patch tokens of an image are identical, every edge ties exactly
    # and the tie-breaking alone decides which tokens merge
    model = _deit_like(seed=1)
    with torch.no_grad():
        model.pos_embed.zero_()
    image = torch.tensor([0.7, -1.3]).view(2, 1, 1, 1).expand(2, 3, 32, 32)
    with torch.no_grad():
        expected, history = _reference_vit(model, image, 8)
        got = patch_vit(model, method="tome", tome_r=8)(image)
        first = _sizes_per_block(model, image)[0][1]
    assert (got - expected).abs().max() <= 1e-5
    # block 0: every A token picks B token 1 (the lowest index) and A tokens 2, 4, ..., 16 (the lowest indices, the
    # class token protected) merge into it; out: unmatched A 0, 18, ..., 64, then B 1 (size 9), 3, ..., 63
    assert first.tolist() == history[0]
    assert first.tolist() == [[1.0] * 25 + [9.0] + [1.0] * 31] * 2


def test_tome_merge_under_exact_ties_follows_the_reference_order():
    metric = torch.ones(1, 8, 4)  # every similarity equal
    x = torch.arange(8.0).view(1, 8, 1).expand(1, 8, 3)
    size = torch.tensor([[1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0]])
    out, new_size = merge.tome_merge(x, metric, size, 2)
    # A = 0 (class, protected), 2, 4, 6; B = 1, 3, 5, 7. All A tokens pick B token 1; A tokens 2 and 4 merge.
    # Output: unmatched A (0, 6), then B (1 + 2 + 4, 3, 5, 7)
    assert new_size.tolist() == [[1.0, 1.0, 6.0, 1.0, 1.0, 1.0]]
    assert out[0, :, 0].tolist() == pytest.approx([0.0, 6.0, (2 * 1 + 1 * 2 + 3 * 4) / 6, 3.0, 5.0, 7.0])
    ref_tokens, ref_sizes = _reference_merge(x[0], metric[0], size[0].tolist(), 2)
    assert ref_sizes == new_size[0].tolist() and torch.allclose(ref_tokens, out[0])


@pytest.mark.parametrize("seed, n, r", [(0, 11, 5), (1, 12, 3), (2, 9, 1)])
def test_tome_merge_equals_the_reference_step(seed, n, r):
    gen = torch.Generator().manual_seed(seed)
    x, metric = torch.randn(2, n, 5, generator=gen), torch.randn(2, n, 3, generator=gen)
    size = torch.randint(1, 5, (2, n), generator=gen).float()
    out, new_size = merge.tome_merge(x, metric, size, r)
    assert out.shape == (2, n - r, 5)
    for b in range(2):
        ref_tokens, ref_sizes = _reference_merge(x[b], metric[b], size[b].tolist(), r)
        assert new_size[b].tolist() == ref_sizes
        assert torch.allclose(out[b], ref_tokens, atol=1e-6)
        assert torch.equal(out[b, 0], x[b, 0])  # the class token stays first, unchanged


def test_token_counts_follow_the_schedule_and_sizes_sum_to_the_input_tokens():
    model = patch_vit(_deit_like(), method="tome", tome_r=12)
    schedule = model.tdm_schedule
    assert schedule.stage_tokens == [65, 53, 41, 29, 17]
    image = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    counts = []
    hooks = [blk.register_forward_hook(lambda m, i, o: counts.append(o.shape[1])) for blk in model.blocks]
    with torch.no_grad():
        model(image)
        for hook in hooks:
            hook.remove()
        records = _sizes_per_block(model, image)
    assert counts == schedule.block_tokens[1:] + [schedule.final_tokens]  # through model.blocks, hooks firing
    assert [c for c, _ in records] == counts
    for count, size in records:
        assert size.shape == (3, count)
        assert size.sum(dim=1).tolist() == [64.0 + 1] * 3  # patch tokens + the class token
        assert size[:, 0].tolist() == [1.0] * 3  # the class token is first and never merged
        assert torch.equal(size, size.round()) and bool((size >= 1).all())


def test_sizes_live_for_one_pass_and_repatching_restores_timm_blocks():
    model = patch_vit(_deit_like(), method="tome", tome_r=8)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = model(image), model(image)
    assert torch.equal(first, second)
    assert type(model.blocks) is SizeTrackingBlocks
    assert not any(isinstance(v, torch.Tensor) for blk in model.blocks for v in vars(blk).values())
    keys = list(model.state_dict())
    patch_vit(model, method="bat", keep_rate=0.7)
    assert type(model.blocks) is torch.nn.Sequential and list(model.state_dict()) == keys


def test_blocks_run_one_by_one_without_sizes_are_refused():
    model = patch_vit(_deit_like(), method="tome", tome_r=8).train()
    model.set_grad_checkpointing(True)  # timm then calls the blocks one by one, past model.blocks
    with pytest.raises(ValueError, match="token sizes"):
        model(torch.randn(1, 3, 32, 32))
