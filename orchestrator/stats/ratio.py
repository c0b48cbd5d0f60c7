"""The ratio of two samples, B/A: the Hodges-Lehmann estimate, its Mann-Whitney interval, and what it supports (pure).

One statistic behind every claim about a ratio: the estimate shown is the Hodges-Lehmann
estimate (exp of the median of the m x n pairwise differences log b_j - log a_i), the interval
shown is the Mann-Whitney interval of the same differences ([D_(w), D_(mn+1-w)], w from the
exact U distribution), and every verdict, word and exit code reads that interval. The
estimate is the middle order statistic of the differences whose outer order statistics are
the interval, so it always lies inside it; a ratio of medians does not (two-state samples,
20 against 20: it fell outside in about a third of draws, tests/unit/test_ratio.py).
No resampling, no seed: the same samples give the same answer on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from orchestrator.stats import describe

CONFIDENCE = 0.95
EXACT_LIMIT = 2500  # m*n up to which the U distribution is counted exactly; above, the normal approximation
METHOD = ("Hodges-Lehmann estimate of B/A (exp of the median of the pairwise differences log b - log a) with the "
          "Mann-Whitney interval of the same differences (exact U distribution for m*n <= 2500, normal approximation "
          "with continuity correction above)")
# What a ratio supports, read from its interval against a threshold (criterion.rs's rule for the first three).
FASTER, SLOWER, SAME = "faster", "slower", "same within noise"


@dataclass(frozen=True)
class Interval:
    """A confidence interval for the ratio B/A and its actual coverage (exact intervals are discrete)."""

    low: float
    high: float
    coverage: float


@dataclass(frozen=True)
class Ratio:
    """B/A as one statistic: the Hodges-Lehmann estimate and its interval, from m and n samples."""

    estimate: float
    interval: Interval
    n_a: int
    n_b: int


@lru_cache(maxsize=256)
def u_distribution(m: int, n: int) -> tuple[float, ...]:
    """P(U = u) for u = 0..m*n under H0 (no shift), counted exactly: f(m,n,u) = f(m-1,n,u-n) + f(m,n-1,u)."""
    # counts[j][u] for the current i: arrangements of i values of A and j values of B with U = u
    counts = [[1] for _ in range(n + 1)]  # i = 0: U = 0 in one way
    for i in range(1, m + 1):
        new = [[1]]  # j = 0: U = 0
        for j in range(1, n + 1):
            size = i * j + 1
            row = [0] * size
            for u, c in enumerate(counts[j]):  # (i-1, j, u - j) -> shift by j
                row[u + j] += c
            for u, c in enumerate(new[j - 1]):  # (i, j-1, u)
                row[u] += c
            new.append(row)
        counts = new
    total = math.comb(m + n, m)
    return tuple(c / total for c in counts[n])


def rank_bound(m: int, n: int, confidence: float) -> tuple[int, float]:
    """(w, coverage): the interval runs from the w-th smallest to the w-th largest pairwise difference."""
    alpha = 1 - confidence
    if m * n <= EXACT_LIMIT:
        cumulative, w = 0.0, 0
        for p in u_distribution(m, n):
            if cumulative + p > alpha / 2:
                break
            cumulative += p
            w += 1
        if w == 0:  # too few samples for this confidence: the widest interval, with its real coverage
            return 1, 1 - 2 * u_distribution(m, n)[0]
        return w, 1 - 2 * cumulative
    return normal_bound(m, n, confidence), confidence


def normal_bound(m: int, n: int, confidence: float) -> int:
    """w from the normal approximation of U with continuity correction (large samples, no ties)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    mean, sd = m * n / 2, math.sqrt(m * n * (m + n + 1) / 12)
    return max(1, math.floor(mean - z * sd - 0.5) + 1)


def _differences(a: tuple[float, ...], b: tuple[float, ...]) -> list[float]:
    if not a or not b or min(a) <= 0 or min(b) <= 0:
        raise ValueError("a ratio needs positive samples on both sides")
    logs_a, logs_b = [math.log(x) for x in a], [math.log(y) for y in b]
    return sorted(y - x for x in logs_a for y in logs_b)


def ratio(a: tuple[float, ...], b: tuple[float, ...], confidence: float = CONFIDENCE) -> Ratio:
    """The Hodges-Lehmann estimate of B/A and its Mann-Whitney interval (positive samples on both sides)."""
    diffs = _differences(a, b)
    w, coverage = rank_bound(len(a), len(b), confidence)
    interval = Interval(math.exp(diffs[w - 1]), math.exp(diffs[len(diffs) - w]), coverage)
    return Ratio(math.exp(describe.median(diffs)), interval, len(a), len(b))


def ratio_interval(a: tuple[float, ...], b: tuple[float, ...], confidence: float = CONFIDENCE) -> Interval:
    """The Mann-Whitney interval for B/A alone: [exp(D_(w)), exp(D_(mn+1-w))]."""
    return ratio(a, b, confidence).interval


def hodges_lehmann_ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The Hodges-Lehmann estimate of B/A alone: exp of the median pairwise log difference."""
    return math.exp(describe.median(_differences(a, b)))


def speedup(found: Ratio, higher_better: bool) -> tuple[float, float, float]:
    """(estimate, low, high) as a speed factor: the ratio for rates, its inverse for times (1/high, 1/low)."""
    if higher_better:
        return found.estimate, found.interval.low, found.interval.high
    return 1 / found.estimate, 1 / found.interval.high, 1 / found.interval.low


def verdict(found: Ratio, threshold: float, higher_better: bool) -> tuple[str, str]:
    """(verdict, why): faster or slower when the whole interval lies beyond the threshold, else the same within
    noise (criterion.rs's rule: a verdict says a difference larger than the threshold is shown with confidence)."""
    interval = found.interval
    if interval.low <= 1 <= interval.high:
        return SAME, f"the {interval.coverage:.0%} interval includes 1"
    if interval.low > 1 + threshold or interval.high < 1 - threshold:
        better = (found.estimate > 1) == higher_better
        return (FASTER if better else SLOWER,
                f"the whole {interval.coverage:.0%} interval lies beyond the {percent(threshold)} noise threshold")
    return SAME, (f"differs by {abs(found.estimate - 1):.1%}, but the {interval.coverage:.0%} interval reaches inside "
                  f"the {percent(threshold)} noise threshold")


def percent(fraction: float) -> str:
    """0.05 -> '5%', 0.0234 -> '2.34%': a threshold as it is, to three figures."""
    return f"{fraction * 100:.3g}%"


def lost_at_least(found: Ratio, higher_better: bool) -> float:
    """The share of speed B lost against A that the whole interval shows (negative: none shown): 1 - the
    interval's best speed factor."""
    return 1 - speedup(found, higher_better)[2]


def within(found: Ratio, threshold: float) -> bool:
    """Whether the whole interval lies inside [1 - threshold, 1 + threshold]: 'the same' is then shown, not
    only a difference not shown."""
    return found.interval.low >= 1 - threshold and found.interval.high <= 1 + threshold
