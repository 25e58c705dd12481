"""Per-frame timings kept in fixed memory, so a camera loop can run for days.

A :class:`StreamingQuantiles` is a histogram over log-spaced bins (ratio :data:`RATIO` between neighbours) from
:data:`LOW` to :data:`HIGH` milliseconds, plus the exact count, sum, minimum and maximum (quantiles 0 and 1 are exact). Its memory is fixed
(``BINS`` int64 counters, about 33 KB) whatever the number of values, and any quantile it reports lies within
half a bin of the true one: a relative error under ``(RATIO - 1) / 2`` = 0.25 %, and never outside the values'
exact minimum and maximum. Values at or below ``LOW`` (including 0) fall into the first bin, values above
``HIGH`` into the last; NaN is ignored.
"""

from __future__ import annotations

import math

import numpy as np

LOW, HIGH, RATIO = 1e-3, 1e6, 1.005  # milliseconds: 1 µs to 16.7 minutes per frame
BINS = int(math.ceil(math.log(HIGH / LOW) / math.log(RATIO))) + 1
_LOG_RATIO = math.log(RATIO)


class StreamingQuantiles:
    """Count, mean, min, max and approximate quantiles of a stream of non-negative numbers, in fixed memory."""

    def __init__(self) -> None:
        self.counts = np.zeros(BINS, dtype=np.int64)  # [BINS]
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    @staticmethod
    def bin_of(value: float) -> int:
        """The bin holding ``value``: bin ``i`` covers ``(LOW * RATIO**(i-1), LOW * RATIO**i]``."""
        if value <= LOW:
            return 0
        return min(BINS - 1, int(math.ceil(math.log(value / LOW) / _LOG_RATIO - 1e-12)))

    def add(self, value: float) -> None:
        if value != value:  # NaN: no place in an order
            return
        self.counts[self.bin_of(value)] += 1
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1; 0.5 is the median); 0.0 when nothing was added."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return 0.0
        if q in (0.0, 1.0):  # the extremes are kept exactly
            return self.low if q == 0.0 else self.high
        rank = q * (self.count - 1)  # statistics.median's convention: the middle of the sorted values
        cumulative = np.cumsum(self.counts)  # [BINS]
        lo = int(np.searchsorted(cumulative, math.floor(rank) + 1))  # bins of the two values around the rank
        hi = int(np.searchsorted(cumulative, math.ceil(rank) + 1))
        value = (self._centre(lo) + self._centre(hi)) / 2
        return min(max(value, self.low), self.high)

    def median(self) -> float:
        return self.quantile(0.5)

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @staticmethod
    def _centre(index: int) -> float:
        """The geometric centre of a bin (its only value for the first bin: ``LOW``)."""
        return LOW if index == 0 else LOW * RATIO ** (index - 0.5)
