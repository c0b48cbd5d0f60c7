"""How certain a CELL's figure is: coefficient of variation, a confidence interval of the median, warnings.

Pure functions over plain lists of floats. The interval of the median is distribution-free
and exact, from order statistics: with n independent repetitions the number of them below
the true median is Binomial(n, 1/2), so [x_(j), x_(n+1-j)] (1-based, sorted) covers the
median with probability 1 - 2 P(B <= j - 1). We take the narrowest such interval whose
coverage is at least the level asked (95 %). No resampling, no seed: the same repetitions
always give the same interval. With n <= 5 no interval reaches 95 %: the widest one,
[min, max], is returned with the coverage it has (n = 5: 93.75 %), and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.stats import describe

LEVEL = 0.95
# The report warns when min or max lies further than this from the median (a repetition that
# does not look like the others: a noisy neighbour, a frequency change, a page-cache miss).
SPREAD_WARNING = 0.10


@dataclass(frozen=True)
class Interval:
    """A confidence interval of the median: bounds, the coverage they have, and the ranks used."""

    low: float
    high: float
    coverage: float  # exact probability that [low, high] covers the median (>= level when reached)
    level_reached: bool
    ranks: tuple[int, int]  # 1-based order statistics


def cv(values: list[float]) -> float:
    """Coefficient of variation: sample standard deviation (ddof 1) / mean; NaN for fewer than 2 values."""
    kept = [v for v in values if v == v]
    if len(kept) < 2:
        return math.nan
    mean = describe.np_sum(kept) / len(kept)
    return describe.std(kept) / mean if mean else math.nan


def _below(n: int, k: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2), exact in integers then divided once."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def median_interval(values: list[float], level: float = LEVEL) -> Interval | None:
    """The order-statistics confidence interval of the median (see the module docstring); None if empty."""
    ordered = sorted(v for v in values if v == v)
    n = len(ordered)
    if n == 0:
        return None
    best = 1
    for j in range(1, n // 2 + 1):
        if 1 - 2 * _below(n, j - 1) >= level:
            best = j
        else:
            break
    coverage = 1 - 2 * _below(n, best - 1) if n > 1 else 0.0
    return Interval(ordered[best - 1], ordered[n - best], coverage, coverage >= level, (best, n - best + 1))


def reached(values: list[float], target: float | None) -> bool:
    """Whether the CV of ``values`` is at or below ``target`` (False with fewer than 2 values)."""
    value = cv(values)
    return target is not None and value == value and value <= target


def columns(values: list[float], prefix: str = "gen_tps") -> dict:
    """The TABLE's certainty columns of one metric: CV, interval bounds, its coverage and method."""
    interval = median_interval(values)
    return {
        f"{prefix}_cv": cv(values),
        f"{prefix}_ci_low": interval.low if interval else math.nan,
        f"{prefix}_ci_high": interval.high if interval else math.nan,
        f"{prefix}_ci_coverage": interval.coverage if interval else math.nan,
        f"{prefix}_ci_method": "order statistics of the median (exact binomial, no resampling)",
    }


def spread_far(values: list[float], limit: float = SPREAD_WARNING) -> bool:
    """Whether min or max lies further than ``limit`` (relative) from the median."""
    ordered = sorted(v for v in values if v == v)
    if len(ordered) < 2:
        return False
    mid = describe.median(ordered)
    return bool(mid) and (abs(ordered[0] - mid) / mid > limit or abs(ordered[-1] - mid) / mid > limit)


def warnings(row: dict) -> list[str]:
    """What the report should say about one ok CELL row of the TABLE, each with what to do."""
    out = []
    value, target = row.get("gen_tps_cv"), row.get("cv_target")
    if target is not None and target == target and value == value and value is not None and value > target:
        out.append(f"CV of gen tok/s {value:.3f} stayed above the target {target:g} after {int(row['gen_tps_n'])} "
                   "repetitions: raise repetitions.max, add rounds, or run on a quieter host (see the noise columns)")
    low, high, mid = row.get("gen_tps_min"), row.get("gen_tps_max"), row.get("gen_tps_median")
    if mid and mid == mid and low == low and high == high and max(abs(low - mid), abs(high - mid)) / mid > SPREAD_WARNING:
        out.append(f"gen tok/s min {low:.4g} / max {high:.4g} lie more than {SPREAD_WARNING:.0%} from the median "
                   f"{mid:.4g}: look at the repetitions TABLE (batch, round) and the noise flags for the outlier; "
                   "trust the median and its interval, not the mean")
    coverage = row.get("gen_tps_ci_coverage")
    if coverage == coverage and coverage is not None and coverage < LEVEL:
        out.append(f"with {int(row['gen_tps_n'])} repetitions the interval [min, max] covers the median with only "
                   f"{coverage:.1%}: run at least 6 repetitions for a 95 % interval")
    return out
