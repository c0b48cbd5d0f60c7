"""Summary statistics over short lists of floats, in plain Python, equal to numpy's bit for bit.

A RUN of 10,000 CELLs has tens of thousands of repetitions; calling numpy or pandas once
per small list costs microseconds of overhead each time, which adds up to seconds. These
functions give the same floats as ``np.percentile`` (method 'linear'), ``np.median``,
``np.sum`` (pairwise summation) and pandas' ``Series.std(ddof=1)``, so TABLEs do not change.
"""

from __future__ import annotations

import math

NAN = float("nan")
# How ``percentile`` places a percentile between order statistics, as the reports name it.
PERCENTILE_METHOD = ("linear interpolation between the two nearest order statistics at rank (n - 1) x q "
                     "(numpy's default 'linear', Hyndman and Fan's type 7)")
_BLOCK = 128  # numpy's PW_BLOCKSIZE


def np_sum(values: list[float]) -> float:
    """``np.sum`` of a float64 list: numpy's pairwise summation, reproduced exactly."""
    return _pairwise(values, 0, len(values))


def _pairwise(a: list[float], start: int, n: int) -> float:
    if n < 8:
        total = -0.0  # numpy starts from -0.0 so that a sum of -0.0s stays -0.0
        for i in range(start, start + n):
            total += a[i]
        return total
    if n <= _BLOCK:
        r = a[start:start + 8]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += a[start + i + j]
            i += 8
        total = (r[0] + r[1] + (r[2] + r[3])) + (r[4] + r[5] + (r[6] + r[7]))
        for k in range(i, n):
            total += a[start + k]
        return total
    half = n // 2
    half -= half % 8
    return _pairwise(a, start, half) + _pairwise(a, start + half, n - half)


def percentile(ordered: list[float], q: float) -> float:
    """``np.percentile(values, q)`` (linear) of an already sorted list; NaN when empty."""
    n = len(ordered)
    if not n:
        return NAN
    virtual = (n - 1) * (q / 100)
    below = math.floor(virtual)
    if below >= n - 1:
        return ordered[-1]
    if below < 0:
        return ordered[0]
    a, b = ordered[below], ordered[below + 1]
    gamma = virtual - below
    diff = b - a
    # numpy's _lerp: from the upper end when gamma >= 0.5, for symmetry and accuracy.
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def scaled_percentile(ordered: list[float], q: float, scale: float) -> float:
    """``percentile([v * scale for v in ordered], q)`` without building the scaled list (scale > 0)."""
    n = len(ordered)
    if not n:
        return NAN
    virtual = (n - 1) * (q / 100)
    below = math.floor(virtual)
    if below >= n - 1:
        return ordered[-1] * scale
    if below < 0:
        return ordered[0] * scale
    a, b = ordered[below] * scale, ordered[below + 1] * scale
    gamma = virtual - below
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def median(ordered: list[float]) -> float:
    """``np.median`` of an already sorted list; NaN when empty."""
    n = len(ordered)
    if not n:
        return NAN
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def std(values: list[float]) -> float:
    """Sample standard deviation (ddof=1) as pandas computes it; NaN for fewer than two values."""
    n = len(values)
    if n < 2:
        return NAN
    mean = np_sum(values) / n
    return math.sqrt(np_sum([(mean - v) * (mean - v) for v in values]) / (n - 1))  # x*x, as numpy squares


def summary(values: list[float]) -> dict:
    """median, p90, std (sample), min, max and n of the non-NaN values."""
    kept = [v for v in values if v == v]
    if not kept:
        return {"median": NAN, "p90": NAN, "std": NAN, "min": NAN, "max": NAN, "n": 0}
    ordered = sorted(kept)  # the standard deviation sums in the given order, as numpy does
    return {"median": median(ordered), "p90": percentile(ordered, 90), "std": std(kept), "min": ordered[0],
            "max": ordered[-1], "n": len(kept)}
