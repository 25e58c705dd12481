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
from ..limits import CLUSTER_RATIO, KNN, METHODS, check_image_size, check_options

__all__ = ["METHODS", "Schedule", "ScheduleError", "Settings", "Stage", "build_schedule", "check_image_size",
           "check_knn", "check_options", "check_tome_r", "default_prune_blocks", "lowest_keep_rate", "max_tome_r"]


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
    knn: int = KNN


@dataclass(frozen=True)
class Settings:
    """The settings that built a schedule, for provenance; ``None`` where one does not apply to the method."""

    prune_blocks: tuple[int, ...] | None
    cluster_ratio: float | None
    knn: int | None
    tome_r: int | None


@dataclass(frozen=True)
class Schedule:
    method: str
    keep_rate: float
    num_tokens: int
    depth: int
    stages: tuple[Stage, ...]
    settings: Settings | None = None

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


def _keep(n_in: int, keep_rate: float) -> int:
    """K: attentive patch tokens a stage with ``n_in`` tokens keeps (at least one)."""
    return max(1, _ceil(keep_rate * (n_in - 1)))


def _clusters(rest: int, cluster_ratio: float) -> int:
    """M: cluster tokens the ``rest`` inattentive tokens of a BAT stage become."""
    return max(1, _round_half_up(cluster_ratio * rest))


def _stage_problem(method: str, n_in: int, keep_rate: float, cluster_ratio: float) -> str | None:
    """Why ``method`` cannot reduce a stage of ``n_in`` tokens at this keep rate (``None``: it can)."""
    keep = _keep(n_in, keep_rate)
    rest = n_in - 1 - keep
    if rest == 0:
        return None
    if method == "bat":
        clusters = _clusters(rest, cluster_ratio)
        if clusters > (keep + 1) // 2:
            return (f"keeps {keep} attentive token(s), too few to merge the {clusters} pair(s) that "
                    f"{clusters} cluster(s) need")
    if method == "evit" and keep < 2:
        return "keeps no attentive token beside EViT's fused one"
    return None


def _stage_counts(num_tokens: int, blocks: tuple[int, ...], keep_rate: float) -> list[tuple[int, int, int]]:
    """``(block, n_in, keep)`` of every stage that removes tokens, BAT's counts (EViT and random share them)."""
    counts, n = [], num_tokens
    for block in blocks:
        keep = _keep(n, keep_rate)
        if keep < n - 1:  # a stage that would remove nothing leaves its block untouched (bit-identical)
            counts.append((block, n, keep))
            n = 1 + keep
    return counts


def _first_problem(method: str, num_tokens: int, blocks: tuple[int, ...], keep_rate: float,
                   cluster_ratio: float) -> str | None:
    for block, n_in, _ in _stage_counts(num_tokens, blocks, keep_rate):
        problem = _stage_problem(method, n_in, keep_rate, cluster_ratio)
        if problem:
            return f"block {block} ({n_in} tokens) {problem}"
    return None


def lowest_keep_rate(method: str, num_tokens: int, blocks: tuple[int, ...],
                     cluster_ratio: float = CLUSTER_RATIO) -> float:
    """The lowest keep rate (in steps of 0.01) at which ``method`` builds a schedule for these blocks."""
    return next(r / 100 for r in range(1, 101)
                if _first_problem(method, num_tokens, blocks, r / 100, cluster_ratio) is None)


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


def _check_ranges(keep_rate: float, cluster_ratio: float, knn: int) -> None:
    if isinstance(keep_rate, bool) or not isinstance(keep_rate, (int, float)) or not 0.0 < keep_rate <= 1.0:
        raise ScheduleError(f"keep rate must be in (0, 1], got {keep_rate}")  # NaN fails the comparison too
    if not 0.0 < cluster_ratio <= 1.0:
        raise ScheduleError(f"cluster ratio must be in (0, 1], got {cluster_ratio}")
    if knn < 1:
        raise ScheduleError(f"kNN k must be >= 1, got {knn}")


def _check_blocks(blocks: tuple[int, ...], depth: int) -> tuple[int, ...]:
    if not blocks:
        raise ScheduleError("no pruning blocks given; name at least one block, e.g. 3,6,9")
    bad = [b for b in blocks if not 0 <= b < depth]
    if bad:
        raise ScheduleError(f"pruning block(s) {bad} out of range for a model with {depth} blocks (0..{depth - 1})")
    if len(set(blocks)) != len(blocks):
        raise ScheduleError(f"pruning blocks repeat: {list(blocks)}")
    return tuple(sorted(blocks))


def build_schedule(num_tokens: int, depth: int, method: str = "bat", keep_rate: float = 0.7,
                   prune_blocks: tuple[int, ...] | None = None, cluster_ratio: float = CLUSTER_RATIO, knn: int = KNN,
                   tome_r: int | None = None) -> Schedule:
    """Compute every stage's token counts once. Raises :class:`ScheduleError` with a one-line message.

    Errors speak for ``method``: a keep rate too low for it names the lowest one that works, and a keep rate
    below 1 that would remove no token at all (too few tokens) is refused rather than labelled as a reduction.
    """
    if method not in METHODS:
        raise ScheduleError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    _check_ranges(keep_rate, cluster_ratio, knn)
    if num_tokens < 2:
        raise ScheduleError(f"need a class token and at least one patch token, got {num_tokens} tokens")
    blocks = _check_blocks(default_prune_blocks(depth) if prune_blocks is None else tuple(prune_blocks), depth)
    if method == "none":
        return Schedule(method, keep_rate, num_tokens, depth, (), Settings(None, None, None, None))

    if method in ("bat", "evit", "random"):
        problem = _first_problem(method, num_tokens, blocks, keep_rate, cluster_ratio)
        if problem:
            lowest = lowest_keep_rate(method, num_tokens, blocks, cluster_ratio)
            hint = " (or lower the cluster ratio)" if method == "bat" else ""
            raise ScheduleError(f"{method} at keep rate {keep_rate}: {problem}; the lowest keep rate that works for "
                                f"{method} here is {lowest}{hint}")
    counts = _stage_counts(num_tokens, blocks, keep_rate)
    if method == "bat":
        stages = [Stage(b, "bat", n, 1 + k, k, _clusters(n - 1 - k, cluster_ratio), _clusters(n - 1 - k, cluster_ratio),
                        knn) for b, n, k in counts]
        settings = Settings(blocks, cluster_ratio, knn, None)
    elif method in ("evit", "random"):
        stages = [Stage(b, method, n, 1 + k, keep=k) for b, n, k in counts]
        settings = Settings(blocks, None, None, None)
    else:
        stages = _tome_stages(num_tokens, depth, keep_rate, blocks, tome_r)
        settings = Settings(None, None, None, stages[0].pairs if stages else 0)
    if not stages and (method != "tome" or tome_r is None) and keep_rate < 1.0:
        raise ScheduleError(f"{method} at keep rate {keep_rate} removes no token from {num_tokens - 1} patch "
                            f"token(s) in blocks {list(blocks)}; use keep rate 1.0 (or --method none) for the "
                            "unreduced model, or a larger image")
    return Schedule(method, keep_rate, num_tokens, depth, tuple(stages), settings)


def max_tome_r(num_tokens: int) -> int:
    """The most tokens ToMe can merge in the first block: half of the patch tokens."""
    return (num_tokens - 1) // 2


def _tome_stages(num_tokens: int, depth: int, keep_rate: float, blocks: tuple[int, ...],
                 tome_r: int | None) -> list[Stage]:
    """ToMe's stages: ``tome_r`` merges per block, or the r whose cost is closest to BAT's at ``keep_rate``."""
    if tome_r is None:
        bat = [Stage(b, "bat", n, 1 + k, k) for b, n, k in _stage_counts(num_tokens, blocks, keep_rate)]
        target = _cost(bat, num_tokens, depth)
        tome_r = min(range(max_tome_r(num_tokens) + 1),
                     key=lambda r: abs(_cost(_tome_schedule(num_tokens, depth, r), num_tokens, depth) - target))
    elif isinstance(tome_r, bool) or not isinstance(tome_r, int) or tome_r < 0:
        raise ScheduleError(f"ToMe r must be an integer >= 0, got {tome_r}")
    return _tome_schedule(num_tokens, depth, tome_r)  # clamped per block, as the reference clamps


def check_tome_r(num_tokens: int, tome_r: int | None) -> None:
    """An explicitly given ToMe r beyond what the first block can merge is an error (the schedule would clamp it)."""
    if tome_r is not None and not 0 <= tome_r <= max_tome_r(num_tokens):
        raise ScheduleError(f"ToMe r must be in 0..{max_tome_r(num_tokens)} for {num_tokens} tokens "
                            f"(half of the {num_tokens - 1} patch tokens), got {tome_r}")


def check_knn(schedule: Schedule, knn: int | None) -> None:
    """An explicitly given kNN k must not exceed the inattentive tokens of any BAT stage (it would be clamped)."""
    if knn is None or schedule.method != "bat" or not schedule.stages:
        return
    stage = min(schedule.stages, key=lambda s: s.n_in - 1 - s.keep)
    most = stage.n_in - 1 - stage.keep
    if not 1 <= knn <= most:
        raise ScheduleError(f"--knn {knn} out of range: block {stage.block} clusters only {most} inattentive "
                            f"tokens, so k must be in 1..{most}")
