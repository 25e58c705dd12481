import numpy as np
import pytest
import torch

from tdm_edge.export.onnx_export import build_metadata
from tdm_edge.export.verify import record_selections, run_with_selections, structured_images
from tdm_edge.reduce.merge import tome_merge
from tdm_edge.reduce.patch import AttentionOutput, patch_vit, reduce_tokens, schedule_of
from tdm_edge.video.tokens import CLUSTERED, FUSED, KEPT, MATCHED, selection_names, token_maps

from ..conftest import tiny_vit


def composition_from_the_model(model, selections):
    """Ground truth from the model's own code: every stage's reduce_tokens applied to one-hot tokens (token i = e_i)
    with the recorded selections forced, so each output row's support is the set of patches in that token."""
    n = model.patch_embed.num_patches
    comp = np.eye(n, dtype=bool)  # [tokens, patches]
    compositions = []
    forced = {k: v for k, v in selections.items()}
    with record_selections(forced):
        for stage in schedule_of(model).stages:
            tokens = comp.shape[0]
            x = torch.eye(tokens + 1, dtype=torch.float64)[None]  # [1, N, N]: CLS + one-hot patch tokens
            if stage.method == "tome":  # its own entry point (token sizes); the one-hot tokens double as the metric
                merged, _ = tome_merge(x, x, None, stage.pairs)
                y = merged[0, 1:, 1:].numpy() != 0  # [N', N-1]
                assert merged[0, 0, 0] == 1 and merged[0, 0, 1:].abs().sum() == 0  # the class token stays alone
            else:
                out = AttentionOutput(x, torch.full((1, tokens), 1.0 / tokens, dtype=torch.float64), x)
                y = reduce_tokens(x, out, stage)[0, 1:, 1:].numpy() != 0  # [N', N-1]: input tokens in each output
            comp = (y.astype(int) @ comp.astype(int)) > 0  # [N', patches]
            compositions.append(comp)
    return compositions


@pytest.mark.parametrize("method", ["bat", "evit", "tome"])
def test_owner_of_every_patch_matches_the_models_own_merge(method):
    model = patch_vit(tiny_vit(), method, 0.7).eval()
    x = torch.from_numpy(structured_images(1, (32, 32), [0.5] * 3, [0.25] * 3)) + 0.1 * torch.randn(1, 3, 32, 32)
    _, selections, _ = run_with_selections(model, x)
    reduction = build_metadata(model, name=None, batch=1, opset=17)["reduction"]
    assert list(selections) == selection_names(reduction)
    maps = token_maps(selections, reduction, 64)
    truth = composition_from_the_model(model, selections)
    assert len(maps) == len(truth) == len(reduction["stages"])
    for stage_map, comp in zip(maps, truth):
        owner_truth = comp.argmax(0)  # [P]: the one token holding each patch
        assert (comp.sum(0) == 1).all()  # a partition: every patch in exactly one token
        np.testing.assert_array_equal(stage_map.owner, owner_truth)


def test_states_of_a_bat_stage():
    model = patch_vit(tiny_vit(), "bat", 0.7).eval()
    x = torch.from_numpy(structured_images(2, (32, 32), [0.5] * 3, [0.25] * 3))
    _, sel, _ = run_with_selections(model, x)
    reduction = build_metadata(model, name=None, batch=1, opset=17)["reduction"]
    stage = reduction["stages"][0]
    first = token_maps(sel, reduction, 64, item=1)[0]  # the second image of the batch
    att, inatt = sel["tdm_attentive_0"][1], sel["tdm_inattentive_0"][1]
    a = att[0::2]
    assert set(np.nonzero(first.state == CLUSTERED)[0]) == set(inatt.tolist())
    assert set(a[sel["tdm_matched_0"][1]].tolist()) <= set(np.nonzero(first.state == MATCHED)[0])
    assert set(a[sel["tdm_unmatched_0"][1]].tolist()) <= set(np.nonzero(first.state == KEPT)[0])
    assert (first.state == MATCHED).sum() <= 2 * stage["pairs"] and (first.state == MATCHED).sum() > stage["pairs"]
    assert first.cluster[first.state == CLUSTERED].max() == stage["clusters"] - 1
    assert first.owner.max() == stage["n_out"] - 2  # output tokens 0..n_out-2 after the class token


def test_evit_fuses_into_one_token():
    model = patch_vit(tiny_vit(), "evit", 0.7).eval()
    _, sel, _ = run_with_selections(model, torch.randn(1, 3, 32, 32))
    reduction = build_metadata(model, name=None, batch=1, opset=17)["reduction"]
    first = token_maps(sel, reduction, 64)[0]
    keep = reduction["stages"][0]["keep"]
    assert (first.state == FUSED).sum() == 64 - (keep - 1)
    assert len(set(first.owner[first.state == FUSED].tolist())) == 1


def test_tome_states_follow_the_matching():
    model = patch_vit(tiny_vit(), "tome", 0.7).eval()
    _, sel, _ = run_with_selections(model, torch.randn(2, 3, 32, 32))
    reduction = build_metadata(model, name=None, batch=1, opset=17)["reduction"]
    maps = token_maps(sel, reduction, 64, item=1)
    assert len(maps) == len(reduction["stages"]) == 4  # ToMe merges in every block
    first, stage = maps[0], reduction["stages"][0]
    src, dst = sel["tdm_matched_0"][1], sel["tdm_partners_0"][1]
    merged_a = 2 * src - 1  # A token i (token 2i, class token = A 0) is patch token 2i - 1
    partner_b = 2 * dst  # B token j (token 2j + 1) is patch token 2j
    assert (first.state[merged_a] == MATCHED).all() and (first.state[partner_b] == MATCHED).all()
    assert (first.state == MATCHED).sum() == len(set(merged_a.tolist()) | set(partner_b.tolist()))
    np.testing.assert_array_equal(first.owner[merged_a], first.owner[partner_b])  # joined: one token
    assert first.owner.max() == stage["n_out"] - 2 and len(np.unique(first.owner)) == stage["n_out"] - 1


def test_token_edges_outline_each_token():
    from tdm_edge.video.overlay import token_edges

    owner = np.array([[0, 0, 1], [2, 2, 1], [2, 2, 1]])  # a 3x3 grid of three tokens
    expected = np.zeros((6, 9), bool)  # 2 x 3 pixels per cell
    expected[:, 6] = True  # token 1's left border, the whole height
    expected[2, :6] = True  # token 2's top border, under token 0
    np.testing.assert_array_equal(token_edges(owner, 6, 9), expected)  # no line inside a token
