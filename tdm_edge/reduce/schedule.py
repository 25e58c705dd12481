"""Fixed per-stage token counts, computed once from the input token count and the keep rate.

Everything downstream (ONNX export, TensorRT engines, the GMAC counter) relies on these counts being plain
ints fixed at patch time. Our choices where the BAT paper is silent (METHOD.md, "Our choices"):

- a BAT stage that receives N tokens (1 CLS + N-1 patches) keeps ``K = ceil(rho * (N-1))`` attentive tokens and
  outputs ``1 + K`` tokens: ``r`` attentive pairs are merged away and the ``L = N-1-K`` inattentive tokens become
  ``M = r`` cluster tokens, with ``M = max(1, round_half_up(cluster_ratio * L))``;
- EViT and the random control produce the same counts (EViT keeps ``K-1`` tokens plus its one fused token);
- ToMe merges ``r`` tokens in every block, ``r`` chosen so its total cost is closest to BAT's at the same keep
  rate (cost of a block ~ tokens entering attention + 2 x tokens entering the MLP, the ratio of their MACs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError

METHODS = ("bat", "evit", "tome", "random", "none")


class ScheduleError(UsageError):
    """A reduction setting that cannot be built; the message is one line meant for the user."""


@dataclass(frozen=True)
class Stage:
    """One reduction step inside a block, between attention and MLP.

    ``keep`` is K (attentive tokens kept by BAT/EViT/random), ``pairs`` the tokens merged away by matching (r),
    ``clusters`` the tokens the inattentive ones become (M). ``n_out == 1 + keep - pairs + clusters`` for BAT.
    """

    block: int
    method: str
    n_in: int
    n_out: int
    keep: int = 0
    pairs: int = 0
    clusters: int = 0
    knn: int = 5


@dataclass(frozen=True)
class Schedule:
    method: str
    keep_rate: float
    num_tokens: int
    depth: int
    stages: tuple[Stage, ...]

    @property
    def block_tokens(self) -> list[int]:
        """Tokens entering each block (length ``depth``)."""
        counts, n = [], self.num_tokens
        by_block = {s.block: s for s in self.stages}
        for i in range(self.depth):
            counts.append(n)
            if i in by_block:
                n = by_block[i].n_out
        return counts

    @property
    def final_tokens(self) -> int:
        return self.stages[-1].n_out if self.stages else self.num_tokens

    @property
    def stage_tokens(self) -> list[int]:
        """Input count followed by the output count of every stage, e.g. ``[197, 139, 98, 69]``."""
        return [self.num_tokens] + [s.n_out for s in self.stages]

    def stage_at(self, block: int) -> Stage | None:
        return next((s for s in self.stages if s.block == block), None)


def default_prune_blocks(depth: int) -> tuple[int, ...]:
    """The 4th, 7th and 10th of 12 blocks (0-based 3, 6, 9), scaled to other depths."""
    return tuple(sorted({depth * i // 4 for i in (1, 2, 3)}))


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 0.7 * 10 must give 7, not 8


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def _bat_counts(n_in: int, keep_rate: float, cluster_ratio: float, block: int) -> tuple[int, int, int]:
    patches = n_in - 1
    keep = max(1, _ceil(keep_rate * patches))
    rest = patches - keep
    if rest == 0:
        return keep, 0, 0
    clusters = max(1, _round_half_up(cluster_ratio * rest))
    if clusters > rest:
        raise ScheduleError(f"block {block}: {clusters} clusters for only {rest} inattentive tokens; "
                            f"use a cluster ratio <= 1")
    if clusters > (keep + 1) // 2:
        raise ScheduleError(f"block {block}: keep rate {keep_rate} leaves {keep} attentive token(s), too few to "
                            f"merge the {clusters} pairs that {clusters} clusters need; raise the keep rate or "
                            f"lower the cluster ratio")
    return keep, clusters, clusters


def _tome_schedule(num_tokens: int, depth: int, r: int) -> list[Stage]:
    stages, n = [], num_tokens
    for block in range(depth):
        step = min(r, (n - 1) // 2)
        if step > 0:
            stages.append(Stage(block, "tome", n, n - step, keep=n - 1 - step, pairs=step))
            n -= step
    return stages


def _cost(schedule_stages: list[Stage], num_tokens: int, depth: int) -> int:
    """Relative cost: tokens through attention + 2 x tokens through the MLP (4C^2 vs 8C^2 MACs per token)."""
    by_block = {s.block: s for s in schedule_stages}
    n, cost = num_tokens, 0
    for block in range(depth):
        out = by_block[block].n_out if block in by_block else n
        cost += n + 2 * out
        n = out
    return cost


def build_schedule(num_tokens: int, depth: int, method: str = "bat", keep_rate: float = 0.7,
                   prune_blocks: tuple[int, ...] | None = None, cluster_ratio: float = 0.25, knn: int = 5,
                   tome_r: int | None = None) -> Schedule:
    """Compute every stage's token counts once. Raises :class:`ScheduleError` with a one-line message."""
    if method not in METHODS:
        raise ScheduleError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(keep_rate, (int, float)) or not 0.0 < keep_rate <= 1.0 or math.isnan(keep_rate):
        raise ScheduleError(f"keep rate must be in (0, 1], got {keep_rate}")
    if not 0.0 < cluster_ratio <= 1.0:
        raise ScheduleError(f"cluster ratio must be in (0, 1], got {cluster_ratio}")
    if knn < 1:
        raise ScheduleError(f"kNN k must be >= 1, got {knn}")
    if num_tokens < 2:
        raise ScheduleError(f"need a class token and at least one patch token, got {num_tokens} tokens")
    blocks = default_prune_blocks(depth) if prune_blocks is None else tuple(prune_blocks)
    bad = [b for b in blocks if not 0 <= b < depth]
    if bad:
        raise ScheduleError(f"pruning block(s) {bad} out of range for a model with {depth} blocks (0..{depth - 1})")
    if len(set(blocks)) != len(blocks):
        raise ScheduleError(f"pruning blocks repeat: {list(blocks)}")
    blocks = tuple(sorted(blocks))

    if method == "none":
        return Schedule(method, keep_rate, num_tokens, depth, ())

    bat, n = [], num_tokens
    for block in blocks:
        keep, pairs, clusters = _bat_counts(n, keep_rate, cluster_ratio, block)
        if keep == n - 1:
            continue  # nothing to remove: leave the block untouched (bit-identical to the original)
        bat.append(Stage(block, "bat", n, 1 + keep, keep, pairs, clusters, knn))
        n = 1 + keep

    if method == "bat":
        stages = bat
    elif method in ("evit", "random"):
        stages = [Stage(s.block, method, s.n_in, s.n_out, keep=s.keep) for s in bat]
    else:  # tome
        if tome_r is None:
            target = _cost(bat, num_tokens, depth)
            tome_r = min(range(num_tokens // 2 + 1),
                         key=lambda r: abs(_cost(_tome_schedule(num_tokens, depth, r), num_tokens, depth) - target))
        if tome_r < 0:
            raise ScheduleError(f"ToMe r must be >= 0, got {tome_r}")
        stages = _tome_schedule(num_tokens, depth, tome_r)
    return Schedule(method, keep_rate, num_tokens, depth, tuple(stages))
