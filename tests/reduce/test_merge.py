"""Each token op against a slow, obviously-correct reference on small inputs."""

import math
from fractions import Fraction

import pytest
import torch

from tdm_edge.reduce import merge


def test_class_attention_is_the_head_mean_of_the_full_attention_row():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    full = ((q @ k.transpose(-2, -1)) * 0.5).softmax(-1)  # [B, H, N, N]
    expected = full[:, :, 0, 1:].mean(1)
    assert torch.allclose(merge.class_attention(q, k, 0.5), expected, atol=1e-7)


def test_argsort_breaks_ties_by_index():
    scores = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0, 1.0]])
    assert merge.argsort_desc(scores).tolist() == [[0, 2, 4, 3, 1, 5]]


def test_decouple_splits_into_top_k_and_rest_in_importance_order():
    imp = torch.tensor([[0.1, 0.4, 0.2, 0.4, 0.05, 0.3]])
    att, inatt = merge.decouple(imp, 3)
    assert att.tolist() == [[1, 3, 5]]
    assert inatt.tolist() == [[2, 0, 4]]


def test_assignment_puts_every_input_token_in_its_output_row():
    s = merge.assignment(torch.tensor([[2, 0, 2, 1]]), 3, torch.float32)  # [1, 3, 4]
    assert s.tolist() == [[[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 0]]]


def test_squared_distances_match_cdist_squared_with_an_exact_zero_diagonal():
    torch.manual_seed(1)
    x = 3.0 * torch.randn(2, 9, 16) + 5.0  # an offset makes |x_i|^2 + |x_j|^2 - 2 x_i.x_j cancel badly
    d2 = merge.squared_distances(x)
    # fp32 rounding of |x_i|^2 + |x_j|^2 - 2 x_i.x_j with |x|^2 up to ~1e3 (ulp ~1.2e-4): a few ulps, measured 2.1e-4
    assert torch.allclose(d2, torch.cdist(x.double(), x.double()).square().float(), atol=1e-3, rtol=0)
    assert torch.all(torch.diagonal(d2, dim1=1, dim2=2) == 0) and torch.all(d2 >= 0)


def _dpc_reference(x, m, k):
    """DPC-kNN written token by token with Python loops (one batch item)."""
    n, c = x.shape
    d = [[float(torch.dist(x[i], x[j])) / math.sqrt(c) for j in range(n)] for i in range(n)]
    rho = [math.exp(-sum(v * v for v in sorted(d[i])[:k]) / k) for i in range(n)]
    delta = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        delta.append(min(denser) if denser else max(d[i]))
    score = [rho[i] * delta[i] for i in range(n)]
    centres = sorted(range(n), key=lambda i: (-score[i], i))[:m]
    labels = []
    for i in range(n):
        if i in centres:
            labels.append(centres.index(i))
        else:
            labels.append(min(range(m), key=lambda c_: (d[i][centres[c_]], c_)))
    return labels


@pytest.mark.parametrize("seed,n,m,k", [(0, 12, 3, 5), (1, 20, 5, 5), (2, 7, 7, 3), (3, 9, 1, 2)])
def test_dpc_knn_matches_per_token_loop(seed, n, m, k):
    torch.manual_seed(seed)
    x = torch.randn(2, n, 8, dtype=torch.float64)
    labels = merge.dpc_knn(x, m, k)
    for b in range(2):
        assert labels[b].tolist() == _dpc_reference(x[b], m, k)


def test_dpc_knn_is_deterministic_under_ties_and_centres_join_themselves():
    # four identical tokens and two other identical pairs: every density and distance ties
    base = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    x = base.unsqueeze(0).repeat(2, 1, 1)
    first = merge.dpc_knn(x, 3, k=2)
    for _ in range(3):
        assert torch.equal(merge.dpc_knn(x, 3, k=2), first)
    assert first[0].tolist() == _dpc_reference(base.double(), 3, 2)
    # three clusters: the zeros, the (3, 0) pair, the lone (0, 5) token
    assert len(set(first[0].tolist())) == 3
    assert first[0, 4] == first[0, 5] and first[0, 0] == first[0, 3]


def _dpc_exact(x, m, k):
    """DPC-kNN in exact rational arithmetic for integer tokens: every tie is a true tie."""
    rows = [[int(v) for v in row] for row in x.tolist()]
    n, c = len(rows), len(rows[0])
    d2 = [[Fraction(sum((a - b) ** 2 for a, b in zip(rows[i], rows[j])), c) for j in range(n)] for i in range(n)]
    knn_mean = [sum(sorted(d2[i])[:k]) / k for i in range(n)]  # density exp(-knn_mean): smaller is denser
    delta2 = []
    for i in range(n):
        denser = [d2[i][j] for j in range(n) if knn_mean[j] < knn_mean[i] or (knn_mean[j] == knn_mean[i] and j < i)]
        delta2.append(min(denser) if denser else max(d2[i]))
    score = [math.exp(-float(knn_mean[i])) * math.sqrt(float(delta2[i])) for i in range(n)]
    centres = sorted(range(n), key=lambda i: (-score[i], i))[:m]
    return [centres.index(i) if i in centres else min(range(m), key=lambda t: (d2[i][centres[t]], t))
            for i in range(n)]


@pytest.mark.parametrize("seed", range(8))
def test_dpc_knn_breaks_exact_ties_like_exact_arithmetic(seed):
    # integer tokens: many distances and densities tie exactly; fp32 computes them exactly too (no sqrt before
    # the density), so the index tie-breaking must give exactly the rational reference's clusters
    gen = torch.Generator().manual_seed(seed)
    length = 10 + 5 * seed
    x = torch.randint(-2, 3, (2, length, 16), generator=gen).float()
    labels = merge.dpc_knn(x, 1 + length // 4, 5)
    for b in range(2):
        assert labels[b].tolist() == _dpc_exact(x[b], 1 + length // 4, 5)


def _matching_reference(metric, r):
    """ToMe-style bipartite matching (BAT's attentive pairs; no protected token) with loops: returns the output
    groups (each B token with its matches, then the unmatched A tokens) as sorted lists of input indices."""
    k = metric.shape[0]
    m = metric / metric.norm(dim=-1, keepdim=True)
    a_idx, b_idx = list(range(0, k, 2)), list(range(1, k, 2))
    best = []
    for i in a_idx:
        sims = [float(m[i] @ m[j]) for j in b_idx]
        j = max(range(len(b_idx)), key=lambda t: (sims[t], -t))
        best.append((sims[j], j))
    order = sorted(range(len(a_idx)), key=lambda t: (-best[t][0], t))
    merged, kept = order[:r], order[r:]
    groups = [[b] + [a_idx[t] for t in merged if best[t][1] == jb] for jb, b in enumerate(b_idx)]
    groups += [[a_idx[t]] for t in sorted(kept)]  # unmatched A tokens keep their input order
    return [sorted(g) for g in groups]


def _groups(matching, k):
    """Output groups of an alternate A/B matching of ``k`` tokens, as :func:`_matching_reference` lists them."""
    src, dst, unm = (t.tolist() for t in matching)
    groups = [[2 * j + 1] + [2 * a for a, d in zip(src, dst) if d == j] for j in range(k // 2)]
    return [sorted(g) for g in groups + [[2 * a] for a in unm]]


@pytest.mark.parametrize("seed,k,r", [(0, 10, 3), (1, 11, 6), (2, 8, 0), (3, 9, 5)])
def test_alternate_bipartite_match_matches_loop_reference(seed, k, r):
    torch.manual_seed(seed)
    metric = torch.randn(2, k, 6, dtype=torch.float64)
    m = merge.bipartite_match(metric[:, 0::2], metric[:, 1::2], r)
    for b in range(2):
        assert _groups(merge.Matching(*(t[b] for t in m)), k) == _matching_reference(metric[b], r)


def test_bipartite_match_is_deterministic_under_ties():
    metric = torch.ones(1, 8, 4)  # all similarities equal
    m = merge.bipartite_match(metric[:, 0::2], metric[:, 1::2], 2)
    # A = 0,2,4,6 all pick B token 1 (lowest index); the two merged are A tokens 0 and 2 (lowest index first)
    assert _groups(merge.Matching(*(t[0] for t in m)), 8) == [[0, 1, 2], [3], [5], [7], [4], [6]]
    protected = merge.bipartite_match(metric[:, 0::2], metric[:, 1::2], 2, protect_first=True)
    # ToMe's class token (A token 0) never merges: A tokens 2 and 4 merge instead
    assert _groups(merge.Matching(*(t[0] for t in protected)), 8) == [[1, 2, 4], [3], [5], [7], [0], [6]]


def test_bipartite_match_keeps_the_r_best_edges_listed_in_a_order():
    torch.manual_seed(4)
    a, b = torch.randn(2, 9, 6, dtype=torch.float64), torch.randn(2, 8, 6, dtype=torch.float64)
    m = merge.bipartite_match(a, b, 4)
    for i in range(2):
        sims = torch.nn.functional.cosine_similarity(a[i, :, None], b[i, None], dim=-1)  # [9, 8]
        best = [(float(sims[t].max()), t) for t in range(9)]
        top = sorted(range(9), key=lambda t: (-best[t][0], t))[:4]
        assert m.src[i].tolist() == sorted(top)  # the 4 best edges, listed in A order
        assert m.dst[i].tolist() == [int(sims[t].argmax()) for t in sorted(top)]
        assert m.unm[i].tolist() == sorted(set(range(9)) - set(top))


def test_merge_matched_is_the_weighted_mean_of_each_b_token_and_its_matches():
    torch.manual_seed(5)
    a, b = torch.randn(1, 5, 3, requires_grad=True), torch.randn(1, 4, 3)
    wa, wb = torch.rand(1, 5) + 0.1, torch.rand(1, 4) + 0.1
    m = merge.Matching(torch.tensor([[0, 2, 3]]), torch.tensor([[1, 1, 3]]), torch.tensor([[1, 4]]))
    out = merge.merge_matched(a, b, wa, wb, m)  # [1, 4, 3]
    joined = {0: [], 1: [0, 2], 2: [], 3: [3]}
    for j, srcs in joined.items():
        total = wb[0, j] * b[0, j] + sum(wa[0, t] * a[0, t] for t in srcs)
        assert torch.allclose(out[0, j], total / (wb[0, j] + sum(wa[0, t] for t in srcs)), atol=1e-6)
    assert torch.equal(out[0, 0], b[0, 0])  # no match: w/w is exactly 1
    out.sum().backward()
    assert a.grad[0, 1].abs().sum() == 0 and a.grad[0, 4].abs().sum() == 0  # unmatched: not in this output
    assert a.grad[0, [0, 2, 3]].abs().sum() > 0


def test_combine_is_an_importance_weighted_mean_with_rows_summing_to_one():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5)
    w = torch.rand(2, 6) + 0.1
    labels = torch.tensor([[0, 1, 0, 2, 1, 0], [2, 2, 1, 0, 0, 1]])
    s = merge.one_hot_rows(labels, 3, x.dtype).transpose(1, 2)  # [B, 3, 6]
    out = merge.combine(x, s, w)
    for b in range(2):
        for c in range(3):
            members = [i for i in range(6) if labels[b, i] == c]
            expected = sum(w[b, i] * x[b, i] for i in members) / sum(w[b, i] for i in members)
            assert torch.allclose(out[b, c], expected, atol=1e-6)
    weights = s * w.unsqueeze(1)
    assert torch.allclose((weights / weights.sum(-1, keepdim=True)).sum(-1), torch.ones(2, 3))


def test_combine_passes_gradients_to_tokens_and_weights():
    x = torch.randn(1, 4, 3, requires_grad=True)
    w = torch.rand(1, 4, requires_grad=True)
    s = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    merge.combine(x, s, w).square().sum().backward()
    assert x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_single_member_rows_reproduce_the_token_exactly():
    torch.manual_seed(0)
    x = torch.randn(1, 5, 7)
    s = merge.one_hot_rows(torch.tensor([[3, 0]]), 5, x.dtype)  # [1, 2, 5]
    out = merge.combine(x, s, torch.rand(1, 5) + 0.01)
    assert torch.equal(out[0, 0], x[0, 3]) and torch.equal(out[0, 1], x[0, 0])
