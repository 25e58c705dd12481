"""Token-decision comparison on hand-made selections: what counts as changed."""

import numpy as np

from tdm_edge.quantize.compare import StageDecisions, compare_decisions


def _bat(att, inatt, matched, partners, clusters):
    a = lambda v: np.asarray([v])  # noqa: E731 - batch of one
    return {"tdm_attentive_0": a(att), "tdm_inattentive_0": a(inatt), "tdm_matched_0": a(matched),
            "tdm_partners_0": a(partners), "tdm_clusters_0": a(clusters).astype(np.float32)}


# 8 patch tokens: attentive by rank 5, 1, 7, 2 (A = 5, 7; B = 1, 2), inattentive 0, 3, 4, 6 in two clusters
REF = _bat([5, 1, 7, 2], [0, 3, 4, 6], [1], [0], [[1, 1, 0, 0], [0, 0, 1, 1]])


def _stage(test):
    stage = StageDecisions(0)
    compare_decisions(REF, test, [stage])
    return stage.as_dict()


def test_identical_selections_change_nothing_and_cluster_ids_do_not_matter():
    same_groups = _bat([5, 1, 7, 2], [0, 3, 4, 6], [1], [0], [[0, 0, 1, 1], [1, 1, 0, 0]])  # ids swapped
    d = _stage(same_groups)
    assert {k: d[k]["identical_images"] for k in ("kept", "matched", "clustered")} == \
        {"kept": 1.0, "matched": 1.0, "clustered": 1.0}


def test_one_swapped_token_counts_two_keep_decisions_and_its_consequences():
    # token 2 is pruned and 3 kept instead; the rank order of A/B is unchanged, so 7 still joins 1
    d = _stage(_bat([5, 1, 7, 3], [0, 2, 4, 6], [1], [0], [[1, 1, 0, 0], [0, 0, 1, 1]]))
    assert d["kept"] == {"identical_images": 0.0, "changed_tokens": 2 / 8, "tokens": 8}
    assert d["matched"]["identical_images"] == 1.0  # 7 -> 1 in both
    # clusters: ref {0, 3}, {4, 6}; test {0, 2}, {4, 6}: tokens 0, 2, 3 changed of the 5 clustered in either
    assert d["clustered"] == {"identical_images": 0.0, "changed_tokens": 3 / 5, "tokens": 5}


def test_a_different_partner_is_a_changed_match():
    d = _stage(_bat([5, 1, 7, 2], [0, 3, 4, 6], [1], [1], [[1, 1, 0, 0], [0, 0, 1, 1]]))  # 7 joins 2, not 1
    assert d["matched"] == {"identical_images": 0.0, "changed_tokens": 1.0, "tokens": 1}
