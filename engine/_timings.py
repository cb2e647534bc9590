"""Execution times as a fixed histogram that adds up across nodes, workers and minutes.

Percentiles of many minutes cannot be made from each minute's percentiles, but bucket counts can
be summed: each rollup row holds how many executions fell in each of ``BUCKETS`` log-spaced
buckets, and p50/p95 are read from the sum. Bucket 0 is under 1 ms; bucket ``i`` (1 to 46) is
``[2^((i-1)/2), 2^(i/2))`` ms, so a percentile is known within a factor of √2 (about ±19% around
the bucket's middle); the last bucket is 2^23 ms (about 2 h 20 min) and longer. The layout is
part of the stored data: changing it needs a migration that converts the rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BUCKETS = 48
_TOP = BUCKETS - 1


@dataclass(slots=True)
class Tally:
    """What one worker's executions in one queue added up to on a node, before they are written:
    outcomes by rollup column, and how many ended in each execution-time bucket."""

    counts: Counter[str] = field(default_factory=Counter)
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)
        for i, n in enumerate(other.buckets):
            self.buckets[i] += n


def bucket_of(seconds: float) -> int:
    """The bucket an execution of ``seconds`` counts in (negative or NaN durations count as 0)."""
    ms = seconds * 1000.0
    if not ms >= 1.0:  # also NaN
        return 0
    if math.isinf(ms):
        return _TOP
    return min(_TOP, int(2.0 * math.log2(ms)) + 1)


def bucket_bounds(index: int) -> tuple[float, float | None]:
    """Seconds at which bucket ``index`` starts and ends (None: the last bucket has no end)."""
    if not 0 <= index < BUCKETS:
        raise ValueError(f"bucket {index} does not exist: buckets are 0 to {_TOP}")
    low = 0.0 if index == 0 else 2.0 ** ((index - 1) / 2) / 1000.0
    high = None if index == _TOP else 2.0 ** (index / 2) / 1000.0
    return low, high


def merged(histograms: Iterable[Sequence[int] | None]) -> list[int]:
    """The bucket-wise sum of ``histograms`` (None, for minutes that recorded no times, adds nothing)."""
    total = [0] * BUCKETS
    for counts in histograms:
        for i, n in enumerate(counts or ()):
            if i < BUCKETS and n:
                total[i] += int(n)
    return total


def percentile(counts: Sequence[int] | None, q: float) -> float | None:
    """Seconds below which a share ``q`` (0 to 1) of the counted executions ended; None with none.

    Inside its bucket the value is placed by the rank's position there, on a log scale (linear in
    the first bucket, from 0); in the last bucket, which has no end, it is that bucket's start.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a percentile is a share from 0 to 1, not {q!r}")
    if not counts:
        return None
    total = sum(int(n) for n in counts)
    if total <= 0:
        return None
    rank = max(q * total, 1e-9)
    seen = 0
    for index, n in enumerate(counts[:BUCKETS]):
        if n <= 0:
            continue
        if seen + n >= rank:
            share = (rank - seen) / n
            low, high = bucket_bounds(index)
            if high is None:
                return low
            if low == 0.0:
                return high * share
            return low * (high / low) ** share
        seen += n
    return bucket_bounds(min(len(counts), BUCKETS) - 1)[0]
