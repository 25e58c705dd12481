"""The token map: what happened to every image patch in every reduction stage, from the model's selection outputs.

An exported model can return its token selections as extra outputs (``tdm-edge export --selection-outputs``, or
added on the fly for ONNX Runtime; names as :func:`tdm_edge.export.verify.record_selections` gives them). A token
after stage 2 may be a merge of tokens of stage 1, so the composition is carried through the stages: ``owner[p]``
is the token (0-based among the patch tokens) holding patch ``p``, and each stage maps its input tokens to its
output tokens the way :func:`tdm_edge.reduce.patch.reduce_tokens` orders them:

- **bat**: attentive tokens alternate into A and B by rank; output = B tokens (each with the A tokens matched into
  it), the unmatched A tokens, then one token per DPC-kNN cluster of the inattentive tokens;
- **evit**: the top K-1 tokens stay, the K-th and the inattentive ones fuse into one token;
- **tome** (every block): all tokens, class token included, alternate into A (even positions, the class token
  first) and B; output = the unmatched A tokens in A order (the class token first: it never merges), then every B
  token, each with the A tokens matched into it (:func:`tdm_edge.reduce.merge.tome_merge`).

Random drop and slicing are not mapped (:data:`MAPPED_METHODS` lists what is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

KEPT, MATCHED, CLUSTERED, FUSED = 0, 1, 2, 3
MAPPED_METHODS = ("bat", "evit", "tome")
STATE_NAMES = ("kept", "matched", "clustered", "fused")


@dataclass(frozen=True)
class StageMap:
    """One stage, per image patch ``p`` (``[P]`` arrays, row-major over the patch grid)."""

    block: int
    state: np.ndarray  # [P] what happened to the token holding p: KEPT, MATCHED, CLUSTERED, FUSED
    group: np.ndarray  # [P] the output token it went into when MATCHED/CLUSTERED/FUSED (-1 when KEPT)
    cluster: np.ndarray  # [P] the cluster id when CLUSTERED (-1 otherwise)
    owner: np.ndarray  # [P] the token (0-based among patch tokens) holding p after the stage


def selection_names(reduction: Mapping) -> list[str]:
    """The selection outputs a model with this ``meta["reduction"]`` has, in recording order."""
    names: list[str] = []
    counts: dict[str, int] = {}

    def add(*kinds: str) -> None:
        for kind in kinds:
            names.append(f"tdm_{kind}_{counts.get(kind, 0)}")
            counts[kind] = counts.get(kind, 0) + 1

    for stage in reduction.get("stages", []):
        method = stage["method"]
        if method in ("bat", "evit"):
            add("attentive", "inattentive")
        if method in ("bat", "tome"):
            add("matched", "partners", "unmatched")
        if method == "bat":
            add("clusters")
    return names


def _stage(method: str, n: int, sel: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stage over ``n`` patch tokens -> ``(dest [n], state [n], cluster [n])`` per input token."""
    dest = np.full(n, -1, np.int64)
    state = np.full(n, KEPT, np.int8)
    cluster = np.full(n, -1, np.int64)
    if method == "evit":
        att, inatt = sel["attentive"], sel["inattentive"]
        k = len(att)
        dest[att[:k - 1]] = np.arange(k - 1)
        dest[att[k - 1]] = dest[inatt] = k - 1
        state[att[k - 1]] = state[inatt] = FUSED
        return dest, state, cluster
    if method == "tome":  # indices over all n + 1 tokens; patch token t is token t + 1
        a, b = np.arange(0, n + 1, 2), np.arange(1, n + 1, 2)  # A (class token first) and B, as token indices
        src, dst, unm = sel["matched"], sel["partners"], sel["unmatched"]  # over A, over B, over A
        out = np.empty(n + 1, np.int64)  # every input token's output position, class token included
        out[a[unm]] = np.arange(len(unm))
        out[b] = len(unm) + np.arange(len(b))
        out[a[src]] = len(unm) + dst
        state[a[src] - 1] = state[b[dst] - 1] = MATCHED  # A token 0 (the class token) is never in src
        return out[1:] - 1, state, cluster  # among patch tokens: output 0 is the class token
    att, inatt = sel["attentive"], sel["inattentive"]  # bat
    a, b = att[0::2], att[1::2]
    src, dst, unm = sel["matched"], sel["partners"], sel["unmatched"]
    dest[b] = np.arange(len(b))
    dest[a[src]] = dst
    dest[a[unm]] = len(b) + np.arange(len(unm))
    state[a[src]] = state[b[dst]] = MATCHED
    labels = sel["clusters"].argmax(0)  # [L]: the cluster of every inattentive token
    dest[inatt] = len(b) + len(unm) + labels
    state[inatt] = CLUSTERED
    cluster[inatt] = labels
    return dest, state, cluster


def token_maps(selections: Mapping[str, np.ndarray], reduction: Mapping, num_patches: int,
               item: int = 0) -> list[StageMap]:
    """Per stage, what happened to every patch of image ``item`` of a batch.

    Args:
        selections: the model's selection outputs (``tdm_attentive_0`` ...), batched ``[B, ...]``.
        reduction: ``meta["reduction"]`` of the exported model (method and stages).
        num_patches: patches in the image (196 for a 224 px, patch-16 model).
    """
    counts: dict[str, int] = {}
    owner = np.arange(num_patches)  # [P] patch p starts as token p
    maps = []
    for stage in reduction.get("stages", []):
        method, n = stage["method"], stage["n_in"] - 1
        kinds = {"bat": ("attentive", "inattentive", "matched", "partners", "unmatched", "clusters"),
                 "evit": ("attentive", "inattentive"), "tome": ("matched", "partners", "unmatched")}.get(method)
        if kinds is None:
            continue  # random/slice: not mapped
        sel = {}
        for kind in kinds:
            sel[kind] = np.asarray(selections[f"tdm_{kind}_{counts.get(kind, 0)}"][item])
            counts[kind] = counts.get(kind, 0) + 1
        dest, state, cluster = _stage(method, n, sel)
        group = np.where(state > KEPT, dest, -1)  # [n]
        maps.append(StageMap(stage["block"], state[owner], group[owner], cluster[owner], dest[owner]))
        owner = dest[owner]
    return maps
