"""Statistics on timings, pure functions of lists of milliseconds (tested on synthetic timings)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import List

import numpy as np

Rounds = List[List[float]]  # one model's times: [[ms of each iteration] for each round] (typing's List: Python 3.8)


def rotation(names: Sequence[str], round_index: int) -> list[str]:
    """The order the models run in round ``round_index``: rotated by one each round, so none is always first."""
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


def percentiles(ms: Sequence[float]) -> dict:
    """p50/p90/p99, quartiles and mean of a list of latencies in ms."""
    p50, p90, p99, q1, q3 = np.percentile(ms, [50, 90, 99, 25, 75])
    r = lambda v: round(float(v), 3)  # noqa: E731
    return {"p50_ms": r(p50), "p90_ms": r(p90), "p99_ms": r(p99), "q1_ms": r(q1), "q3_ms": r(q3),
            "iqr_ms": r(q3 - q1), "mean_ms": r(statistics.fmean(ms)), "n": len(ms)}


def paired_ratio(num: Rounds, den: Rounds) -> float:
    """Median over rounds of (median of ``num`` in the round / median of ``den`` in the same round).

    The two models ran back to back in each round, so drifts of the machine's speed between rounds cancel.
    """
    return float(np.median([np.median(a) / np.median(b) for a, b in zip(num, den)]))


def pct(ratio: float) -> float:
    """A ratio as a signed percentage over 1 (1.0426 -> 4.26)."""
    return round(100 * (ratio - 1), 2)


def summarise(repeats: Sequence[dict[str, Rounds]], pairs: Sequence[tuple[str, str]], batch: int = 1) -> dict:
    """Per-model percentiles and throughput over all samples; each ratio per repeat (paired by round), its median
    over the repeats and its range; beside it the plain ratio of the two p50s (``p50_ratios``).

    The two ratios are different statistics and may differ by a few percent: the paired ratio is a median of
    per-round ratios (drift between rounds cancels), the p50 ratio divides two medians of all samples.
    """
    models = list(repeats[0])
    per_model = {}
    for key in models:
        stats = percentiles([t for rep in repeats for rnd in rep[key] for t in rnd])
        stats["images_per_s"] = round(1e3 * batch / stats["p50_ms"], 2)
        per_model[key] = stats
    per_repeat = {f"{a}/{b}": [round(paired_ratio(rep[a], rep[b]), 4) for rep in repeats]
                  for a, b in pairs if a in models and b in models}
    ratios = {k: round(float(np.median(v)), 4) for k, v in per_repeat.items()}
    ranges = {k: [round(min(v), 4), round(max(v), 4)] for k, v in per_repeat.items()}
    p50_ratios = {f"{a}/{b}": round(per_model[a]["p50_ms"] / per_model[b]["p50_ms"], 4)
                  for a, b in pairs if a in models and b in models}
    return {"per_model": per_model, "ratios_per_repeat": per_repeat, "ratios": ratios, "ratio_ranges": ranges,
            "p50_ratios": p50_ratios}


def compared_pairs(keys: Sequence[str]) -> list[tuple[str, str]]:
    """The ratios a bench reports for models ``keys``: every reduction (pruned and each extra) over the ideal slice
    and over unpruned, the ideal slice over unpruned, and the pruned model over each extra (BAT / ToMe ...)."""
    reductions = [k for k in keys if k not in ("unpruned", "ideal")]
    pairs = [(k, "ideal") for k in reductions] + [(k, "unpruned") for k in reductions] + [("ideal", "unpruned")]
    pairs += [("pruned", k) for k in reductions if k != "pruned"]
    return [(a, b) for a, b in pairs if a in keys and b in keys]
