"""Fixed-memory per-frame statistics: quantiles within the documented 0.25 % of numpy's, memory independent of N."""

from __future__ import annotations

import statistics
import tracemalloc

import numpy as np
import pytest

from tdm_edge.video.loop import STAGES, Summary
from tdm_edge.video.quantiles import BINS, HIGH, LOW, RATIO, StreamingQuantiles

TOLERANCE = (RATIO ** 0.5 - 1) * (1 + 1e-9)  # half a log bin: the documented bound


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.99, 1.0])
def test_quantiles_within_half_a_bin_of_numpy(seed, q):
    values = np.random.default_rng(seed).lognormal(mean=1.0, sigma=1.5, size=5001)  # ms, 0.01 .. 1000
    stream = StreamingQuantiles()
    for v in values:
        stream.add(float(v))
    exact = float(np.quantile(values, q, method="inverted_cdf" if q in (0.0, 1.0) else "linear"))
    assert stream.count == values.size and stream.mean() == pytest.approx(values.mean(), rel=1e-12)
    # the two order statistics around the rank are each within half a bin; so is any point between them
    lo, hi = np.sort(values)[int(np.floor(q * 5000))], np.sort(values)[int(np.ceil(q * 5000))]
    assert lo * (1 - TOLERANCE) <= stream.quantile(q) <= hi * (1 + TOLERANCE)
    assert abs(stream.quantile(q) - exact) <= TOLERANCE * max(abs(lo), abs(hi))


def test_median_even_count_is_mean_of_middle_values_within_tolerance():
    stream = StreamingQuantiles()
    for v in (1.0, 2.0, 10.0, 20.0):
        stream.add(v)
    assert stream.median() == pytest.approx(statistics.median([1.0, 2.0, 10.0, 20.0]), rel=TOLERANCE)  # 6.0


def test_constant_stream_is_exact_and_extremes_are_clamped():
    stream = StreamingQuantiles()
    for _ in range(100):
        stream.add(3.7)
    assert stream.median() == 3.7 and stream.quantile(0.99) == 3.7  # clamped to the exact min = max
    edge = StreamingQuantiles()
    for v in (0.0, LOW / 10, HIGH * 10, float("nan")):
        edge.add(v)
    assert edge.count == 3  # NaN ignored
    assert edge.quantile(0.0) == 0.0 and edge.quantile(1.0) == HIGH * 10  # extremes exact
    assert StreamingQuantiles().median() == 0.0
    with pytest.raises(ValueError):
        edge.quantile(1.5)


def test_bins_partition_the_range():
    assert StreamingQuantiles.bin_of(LOW) == 0 and StreamingQuantiles.bin_of(LOW * RATIO) == 1
    assert StreamingQuantiles.bin_of(LOW * RATIO * 1.0001) == 2 and StreamingQuantiles.bin_of(HIGH * 2) == BINS - 1


def test_summary_memory_does_not_grow_with_frames():
    """The loop's per-frame statistics: adding 20,000 frames allocates nothing that stays (a list would keep
    ~32 bytes per value per stage: 20,000 x 6 x 32 = 3.8 MB)."""
    summary = Summary()
    for stage in STAGES:  # first touch of numpy's cumsum paths etc. outside the measurement
        summary.ms[stage].add(1.0)
    summary.loop_ms.add(1.0)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(20_000):
            for stage in STAGES:
                summary.ms[stage].add(1.0 + (i % 97) / 10)
            summary.loop_ms.add(0.5 + (i % 13) / 10)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 4096, f"per-frame statistics kept {grown} bytes over 20,000 frames"
    assert summary.median_ms("capture") == pytest.approx(statistics.median([1.0] + [1.0 + (i % 97) / 10
                                                                                 for i in range(20_000)]),
                                                         rel=TOLERANCE)
