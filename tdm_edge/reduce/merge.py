"""Token selection, grouping and combination as small pure tensor functions.

Every function takes and returns tensors shaped ``[B, N, C]`` (tokens) or ``[B, N]`` (per-token scores) and
receives its counts as plain Python ints, so a traced graph has static shapes: TopK with constant K,
Gather/GatherElements, MatMul, Softmax, Where, ArgMin/ArgMax with constant axes. Nothing here uses NonZero,
boolean indexing or scatter with a reduction (see ../shared/METHOD.md for why).

A combination is always "assignment matrix times tokens": ``S [B, M, N]`` holds 0/1 (which input token goes to
which output token), it is built under ``no_grad`` from the selection, and :func:`combine` multiplies it by the
per-token weights (which keep their gradient) and normalises the rows. :func:`weighted_merge` is the same for a
matching, restricted to the tokens that actually merge (``[Kb, r]`` times the ``r`` matched tokens).

ToMe (:func:`tome_merge`) is the reference algorithm of facebookresearch/ToMe (``tome/merge.py``,
``bipartite_soft_matching`` + ``merge_wavg``): all tokens split alternately, class token protected, output
``[unmatched A, B]``, size-weighted means; the reference's ``scatter_reduce`` becomes the same MatMul.

Where the BAT paper is silent these functions implement our documented choices (METHOD.md "Our choices"):
ties are broken by token index everywhere, DPC-kNN follows TCFormer without its random tie-breaking noise, the
densest token's delta is its row maximum, and matching is ToMe's bipartite soft matching with cosine similarity.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..limits import KNN


def class_attention(q: torch.Tensor, k: torch.Tensor, scale: float, bias: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Importance of every patch token: the class token's post-softmax attention, averaged over heads.

    Computes only the class token's row, so a fused attention kernel can still do the full attention.

    Args:
        q, k: queries and keys ``[B, H, N, d]``; token 0 is the class token.
        scale: the attention scale (``d ** -0.5`` in timm).
        bias: optional additive attention bias ``[B, 1, 1, N]`` (ToMe's log token sizes), as in the attention.
    Returns:
        ``[B, N-1]``: ``softmax(q_cls k^T * scale + bias)[:, :, 1:]`` averaged over heads.
    """
    logits = (q[:, :, :1] * scale) @ k.transpose(-2, -1)  # [B, H, 1, N]
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1)[:, :, 0, 1:].mean(dim=1)  # [B, N-1]


def sort_desc(scores: torch.Tensor, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` largest of ``scores [B, N]`` (all N by default) in descending order, equal scores in index order.

    Returns ``(values, indices)``, each ``[B, count]``. Eager PyTorch uses a stable sort (``torch.topk`` does not
    promise an order for ties) and keeps its first ``count``. Neither ONNX exporter supports a stable sort, so
    while exporting this is one TopK with constant K, whose ONNX specification breaks ties the same way (the
    lower index first): same result, one node, and ``count < N`` makes it a partial sort.
    """
    size = int(scores.shape[-1])  # a Python int, so K stays a constant even with a dynamic batch axis
    count = size if count is None else int(count)
    if torch.onnx.is_in_onnx_export():
        values, indices = torch.topk(scores, count, dim=-1, largest=True, sorted=True)
        return values, indices  # [B, count] each
    values, indices = torch.sort(scores, dim=-1, descending=True, stable=True)
    return values[:, :count], indices[:, :count]


def argsort_desc(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort ``scores [B, N]`` in descending order, equal scores in index order (see :func:`sort_desc`)."""
    return sort_desc(scores)[1]  # [B, N]


def gather_tokens(x: torch.Tensor, idx: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """``x [B, N, C]`` at ``idx + offset`` (``idx [B, K]``) -> ``[B, K, C]``.

    Rows of the flattened ``[B*N, C]`` tokens: one ONNX Gather of whole rows. ``x.gather`` with an index expanded
    to ``[B, K, C]`` (GatherElements) gives the same values but was the costliest merge op in ONNX Runtime.
    ``offset`` (a Python int) skips leading tokens without slicing (copying) them off first: patch ``i`` of
    ``x[:, 1:]`` is ``gather_tokens(x, i, offset=1)``; it folds into the same constant as the batch offsets.
    """
    batch, count, channels = x.shape
    base = torch.arange(batch, device=idx.device).unsqueeze(1) * count + offset  # [B, 1]: a constant
    rows = idx + base  # [B, K] into [B*N]
    return x.reshape(batch * count, channels)[rows.reshape(-1)].reshape(batch, -1, channels)  # [B, K, C]


def decouple(importance: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split patch tokens into the ``keep`` attentive and the remaining inattentive ones.

    Args:
        importance: ``[B, N]`` class attention of each patch token.
        keep: K, the number of attentive tokens (a Python int).
    Returns:
        ``(attentive [B, K], inattentive [B, N-K])`` token indices, each ordered by decreasing importance,
        ties by lower index first.
    """
    order = argsort_desc(importance)  # [B, N]
    return order[:, :keep], order[:, keep:]


def combine(x: torch.Tensor, assignment: torch.Tensor, weights: torch.Tensor | None = None,
            normalize: bool = True) -> torch.Tensor:
    """Combine tokens by a weighted assignment matrix.

    Args:
        x: tokens ``[B, N, C]``.
        assignment: 0/1 matrix ``[B, M, N]``: row m selects the input tokens of output token m.
        weights: per-token weights ``[B, N]`` (class attention); ``None`` gives plain means.
        normalize: divide each row by its weight sum (weighted mean). EViT's fused token uses False.
    Returns:
        ``[B, M, C]`` = ``W @ x`` with ``W = assignment * weights`` (rows summing to one when normalised).
    """
    w = assignment if weights is None else assignment * weights.unsqueeze(1)  # [B, M, N]
    if normalize:
        w = w / w.sum(dim=-1, keepdim=True)
    return w @ x  # [B, M, C]


def one_hot_rows(idx: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``idx [B, M]`` -> ``[B, M, size]`` with a single 1 per row at ``idx`` (an Equal, no scatter)."""
    cols = torch.arange(size, device=idx.device)
    return (idx.unsqueeze(-1) == cols).to(dtype)  # [B, M, size]


def assignment(dest: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``dest [B, N]`` (the output row of every input token) -> 0/1 ``[B, size, N]`` with a 1 at ``(dest[n], n)``.

    One Equal against ``arange(size)``: no scatter, and no Transpose of a :func:`one_hot_rows` result.
    """
    rows = torch.arange(size, device=dest.device).view(1, -1, 1)  # [1, size, 1]
    return (dest.unsqueeze(1) == rows).to(dtype)  # [B, size, N]


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between tokens: ``[B, L, C] -> [B, L, L]``.

    One MatMul (no ``torch.cdist``, so it lowers to plain ONNX ops): ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``. The product
    is scaled by -2 straight after the MatMul (ONNX Runtime fuses that into the MatMul) and the squared norms are read
    off its diagonal (times -1/2, exact), which makes the diagonal exactly zero (``(g + g) + (-2g) == 0`` in floating
    point) without a mask and costs no pass over the ``[L, C]`` tokens. Rounding can take an entry slightly below
    zero; it is clamped.
    """
    length = int(x.shape[1])  # a Python int: a constant in the exported graph
    gram = (x @ x.transpose(-2, -1)) * -2.0  # [B, L, L]: -2 x_i.x_j, one fused MatMul
    sq = gram.reshape(-1, length * length)[:, ::length + 1] * -0.5  # [B, L]: the diagonal, one strided Slice
    return (sq.unsqueeze(2) + sq.unsqueeze(1) + gram).clamp_min(0.0)  # [B, L, L]


def dpc_knn(x: torch.Tensor, num_clusters: int, k: int = KNN) -> torch.Tensor:
    """Simplified density-peak clustering (DPC-kNN, as in TCFormer) into a fixed number of clusters.

    1. ``D = cdist(x, x) / sqrt(C)``; 2. density ``rho_i = exp(-mean_{j in kNN(i)} D_ij^2)`` (the kNN include i
    itself, as in TCFormer); 3. ``delta_i = min D_ij`` over tokens j denser than i, the row maximum for the
    densest; 4. the ``num_clusters`` tokens with the highest ``rho * delta`` are centres and every token joins
    its nearest centre, centres themselves. Equal densities are ordered by index (the lower index counts as
    denser), equal scores and equal distances pick the lower index: no random noise.

    Works on squared distances (:func:`squared_distances`, without the ``1/C``) throughout: the neighbours, the
    minima and maxima and the nearest centre are the same as on ``D``, the density needs ``D^2`` anyway (``1/C``
    is applied to its ``[B, L]`` kNN means), and only ``delta`` (``[B, L]``) takes a square root; its ``1/sqrt(C)``
    is left out, which scales every score alike and so picks the same centres.

    Args:
        x: tokens ``[B, L, C]``.
        num_clusters: M, ``1 <= M <= L`` (a Python int).
        k: neighbours for the density, clipped to L.
    Returns:
        ``[B, L]`` cluster id of every token, in ``[0, M)``; cluster m is centred on the m-th best-scoring token.
    """
    length, channels = int(x.shape[1]), int(x.shape[2])  # Python ints: constants even with a dynamic batch
    d2 = squared_distances(x)  # [B, L, L]: C * D^2
    knn = torch.topk(d2, k=min(k, length), dim=-1, largest=False).values  # [B, L, k]
    density = (knn.mean(dim=-1) * (-1.0 / channels)).exp()  # [B, L]: exp(-mean D^2)

    idx = torch.arange(length, device=x.device)
    rho_i, rho_j = density.unsqueeze(2), density.unsqueeze(1)  # [B, L, 1], [B, 1, L]
    lower_index = (idx.unsqueeze(0) < idx.unsqueeze(1)).unsqueeze(0)  # [1, L, L]: j < i
    denser = torch.where(lower_index, rho_j >= rho_i, rho_j > rho_i)  # [B, L, L]: j denser than i
    row_max = d2.amax(dim=-1, keepdim=True)  # [B, L, 1]
    delta = torch.where(denser, d2, row_max).amin(dim=-1).sqrt()  # [B, L]: sqrt(C) * delta

    centres = sort_desc(density * delta, num_clusters)[1]  # [B, M]: one TopK with K = M
    to_centre = d2.gather(2, centres.unsqueeze(1).expand(-1, length, -1))  # [B, L, M]
    is_centre = centres.unsqueeze(1) == idx.view(1, -1, 1)  # [B, L, M]
    to_centre = torch.where(is_centre, torch.full_like(to_centre, -1.0), to_centre)
    return to_centre.argmin(dim=-1)  # [B, L]


def cluster_assignment(x: torch.Tensor, num_clusters: int, k: int = 5) -> torch.Tensor:
    """DPC-kNN clusters of ``x [B, L, C]`` as an assignment matrix ``[B, M, L]`` for :func:`combine`."""
    with torch.no_grad():
        labels = dpc_knn(x, num_clusters, k)  # [B, L]
        if torch.onnx.is_in_onnx_export():  # built as [B, M, L] directly: no Transpose node
            return assignment(labels, num_clusters, x.dtype)  # [B, M, L]
        # eager: the same values as a transposed view, the memory layout (and so the MatMul rounding in
        # combine) this function has always had
        return one_hot_rows(labels, num_clusters, x.dtype).transpose(1, 2)  # [B, M, L]


class Matching(NamedTuple):
    """ToMe's bipartite matching between token sets A ``[B, Ka, C]`` and B ``[B, Kb, C]``, ``r`` edges kept.

    Both index tensors over A are in A's own order (for BAT: decreasing importance), so a selection depends only on
    which edges are among the ``r`` best, not on how near-equal edges are ordered among themselves.
    """

    src: torch.Tensor  # [B, r] A tokens merged away, in A order
    dst: torch.Tensor  # [B, r] the B token each of them joins
    unm: torch.Tensor  # [B, Ka - r] A tokens left unmatched, in A order


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """``perm [B, N]`` (each row a permutation of ``0..N-1``) -> ``inv`` with ``inv[b, perm[b, i]] = i``.

    One ascending TopK of distinct values (constant K, no scatter).
    """
    return torch.topk(perm.float(), int(perm.shape[-1]), dim=-1, largest=False, sorted=True).indices  # [B, N]


def bipartite_match(a: torch.Tensor, b: torch.Tensor, r: int, protect_first: bool = False) -> Matching:
    """ToMe's bipartite soft matching: every A token finds its most similar B token, the ``r`` best pairs merge.

    Similarity is cosine: ``a @ b^T`` divided by the outer product of the norms (``[Ka, Kb]`` divisions instead of
    normalising all ``[K, C]`` tokens first). Ties pick the lower index: the B token with the lower index, and among
    equally good edges the A token with the lower index. Several A tokens may join the same B token, as in ToMe.

    Args:
        a, b: ``[B, Ka, C]`` and ``[B, Kb, C]`` features to compare (tokens, or keys for ToMe).
        r: edges to keep, ``0 <= r <= Ka`` (``<= Ka - 1`` with ``protect_first``; a Python int).
        protect_first: A token 0 (ToMe's class token) never merges: its best similarity counts as ``-inf``, as
            ToMe's ``scores[..., 0, :] = -inf``, so it ranks last and always stays unmatched.
    Returns:
        :class:`Matching` of index tensors (selections, no gradient).
    """
    count = int(a.shape[1])  # a Python int: constant K for every TopK
    with torch.no_grad():
        norms = a.norm(dim=-1, keepdim=True) * b.norm(dim=-1).unsqueeze(1)  # [B, Ka, Kb]
        scores = (a @ b.transpose(-2, -1)) / norms  # [B, Ka, Kb]
        partner = scores.argmax(dim=-1)  # [B, Ka]: most similar B token, lower index on ties
        best = scores.amax(dim=-1)  # [B, Ka]: its similarity (the same value as scores at partner)
        idx = torch.arange(count, device=a.device, dtype=a.dtype)  # [Ka]
        if protect_first:
            best = torch.where(idx == 0, float("-inf"), best)  # [B, Ka]: one Where on the [B, Ka] maxima
        rank = inverse_permutation(argsort_desc(best))  # [B, Ka]: place of each A token among the edges
        # matched A tokens first, then the unmatched ones, each group in A order: an ascending sort of distinct
        # keys (index, or index + Ka when unmatched), one TopK
        key = torch.where(rank < r, idx, idx + count)  # [B, Ka]
        order = torch.topk(key, count, dim=-1, largest=False, sorted=True).indices  # [B, Ka]
        src = order[:, :r]  # [B, r]
        return Matching(src, partner.gather(1, src), order[:, r:])


def weighted_merge(a: torch.Tensor, b: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor,
                   matching: Matching) -> tuple[torch.Tensor, torch.Tensor]:
    """Every B token as the weighted mean of itself and the A tokens matched to it, with its weight sum.

    ``wa [B, Ka]`` and ``wb [B, Kb]`` are per-token weights (class attention for BAT, token sizes for ToMe). Only
    the ``r`` matched A tokens enter the MatMul (``[Kb, r] @ [r, C]``); the unmatched ones are
    ``gather_tokens(a, matching.unm)``, unchanged.

    Returns:
        ``([B, Kb, C] merged tokens, [B, Kb] weight sums)``; the sums are ToMe's new sizes.
    """
    kb = int(b.shape[1])
    x_src, w_src = gather_tokens(a, matching.src), wa.gather(1, matching.src)  # [B, r, C], [B, r]
    with torch.no_grad():
        joins = assignment(matching.dst, kb, a.dtype)  # [B, Kb, r]
    weights = joins * w_src.unsqueeze(1)  # [B, Kb, r]: A token t joins B token j with weight w_src[t]
    total = wb + weights.sum(dim=-1)  # [B, Kb]: each output's weight sum
    norm = total.unsqueeze(-1)  # [B, Kb, 1]
    # normalise the small weight tensors, not the [Kb, C] result: two passes over [Kb, C] instead of three
    return (wb.unsqueeze(-1) / norm) * b + (weights / norm) @ x_src, total  # [B, Kb, C], [B, Kb]


def merge_matched(a: torch.Tensor, b: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor,
                  matching: Matching) -> torch.Tensor:
    """The merged B tokens ``[B, Kb, C]`` of :func:`weighted_merge` (BAT's attentive pairs)."""
    return weighted_merge(a, b, wa, wb, matching)[0]


def tome_merge(x: torch.Tensor, metric: torch.Tensor, size: torch.Tensor | None, r: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe step as facebookresearch/ToMe does it (``bipartite_soft_matching`` with ``class_token=True``, then
    ``merge_wavg``), with static shapes: no ``scatter_reduce``.

    All tokens alternate into A (even positions, the class token is A's first) and B (odd positions); each A token
    finds its most similar B token by the cosine of ``metric``; the class token is protected; the ``r`` A tokens
    with the best edges merge into their partners. Output: the unmatched A tokens in input order (class token
    first, as the reference's sorted ``unm_idx``), then every B token in input order. Merging is a size-weighted
    mean, ``sum(size * x) / sum(size)``, and the sizes add up.

    Args:
        x: tokens ``[B, N, C]``, token 0 the class token.
        metric: ``[B, N, d]`` features to compare (ToMe: the keys averaged over heads).
        size: ``[B, N]`` tokens each token stands for; ``None`` for all ones (before the first merge).
        r: tokens to remove, ``0 <= r <= (N - 1) // 2`` (a Python int).
    Returns:
        ``(tokens [B, N - r, C], sizes [B, N - r])``.
    """
    if size is None:
        size = torch.ones_like(x[:, :, 0])  # [B, N]
    match = bipartite_match(metric[:, 0::2], metric[:, 1::2], r, protect_first=True)
    x_a, x_b = x[:, 0::2], x[:, 1::2]  # [B, Ka, C], [B, Kb, C]
    s_a, s_b = size[:, 0::2], size[:, 1::2]  # [B, Ka], [B, Kb]
    merged, s_merged = weighted_merge(x_a, x_b, s_a, s_b, match)  # [B, Kb, C], [B, Kb]
    unmatched, s_unm = gather_tokens(x_a, match.unm), s_a.gather(1, match.unm)  # [B, Ka - r, C], [B, Ka - r]
    return torch.cat([unmatched, merged], dim=1), torch.cat([s_unm, s_merged], dim=1)
