"""The token map: what happened to every image patch in every reduction stage, from the model's selection outputs.

An exported model can return its token selections as extra outputs (``tdm-edge export --selection-outputs``, or
added on the fly for ONNX Runtime; names as :func:`tdm_edge.export.verify.record_selections` gives them). A token
after stage 2 may be a merge of tokens of stage 1, so the composition is carried through the stages: ``owner[p]``
is the token (0-based among the patch tokens) holding patch ``p``, and each stage maps its input tokens to its
output tokens the way :func:`tdm_edge.reduce.patch.reduce_tokens` orders them:

- **bat**: attentive tokens alternate into A and B by rank; output = B tokens (each with the A tokens matched into
  it), the unmatched A tokens, then one token per DPC-kNN cluster of the inattentive tokens;
- **evit**: the top K-1 tokens stay, the K-th and the inattentive ones fuse into one token.

ToMe is not mapped: its merge now follows the reference (class token in set A, token sizes), whose output order
this module does not follow yet; :data:`MAPPED_METHODS` lists what is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

KEPT, MATCHED, CLUSTERED, FUSED = 0, 1, 2, 3
MAPPED_METHODS = ("bat", "evit")
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
        if method == "bat":
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
                 "evit": ("attentive", "inattentive")}.get(method)
        if kinds is None:
            continue  # random/slice/tome: not mapped
        sel = {}
        for kind in kinds:
            sel[kind] = np.asarray(selections[f"tdm_{kind}_{counts.get(kind, 0)}"][item])
            counts[kind] = counts.get(kind, 0) + 1
        dest, state, cluster = _stage(method, n, sel)
        group = np.where(state > KEPT, dest, -1)  # [n]
        maps.append(StageMap(stage["block"], state[owner], group[owner], cluster[owner], dest[owner]))
        owner = dest[owner]
    return maps
