"""The noise threshold between "same" and "faster/slower", derived from a RUN's own rounds where it has them (pure).

Repetitions within one BATCH do not show what changes between RUNs (container start, page
cache, frequency steps, neighbours). A RUN with several ROUNDs runs each CELL in several
BATCHes spread over the RUN, so the difference between a CELL's rounds shows that variation.
For each CELL with two or more rounds the *round spread* of a metric is the ratio of its
largest round median to its smallest, less one; the RUN's threshold is the median of that
over its CELLs: half the CELLs moved at least this much between rounds of the same RUN, so a
difference below it is not told apart from noise. A RUN of one round has no such figure: the
fixed FIXED threshold (5 %, criterion.rs's default) is used, and every threshold says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.stats import describe

FIXED = 0.05
FIXED_HOW = "fixed 5% (no RUN here has two or more rounds to derive it from)"


@dataclass(frozen=True)
class Threshold:
    """A relative difference below which two figures are called the same, and how it was chosen."""

    value: float
    how: str
    derived: bool = False


def round_spread(by_round: Mapping[int, Iterable[float]]) -> float | None:
    """Largest round median / smallest round median - 1 over the rounds holding values (None: fewer than 2)."""
    medians = [describe.median(sorted(values)) for values in map(list, by_round.values()) if values]
    medians = [m for m in medians if m > 0]
    if len(medians) < 2:
        return None
    return max(medians) / min(medians) - 1


def derived(spreads: Iterable[float | None], what: str = "this RUN") -> Threshold | None:
    """The median round spread over the CELLs that have one (None when no CELL has two rounds)."""
    found = sorted(s for s in spreads if s is not None)
    if not found:
        return None
    value = describe.median(found)
    return Threshold(value, f"derived from {what}'s rounds: the median over {len(found)} CELL(s) of the largest ratio "
                            "between two round medians of one CELL, less 1", True)


def fixed() -> Threshold:
    return Threshold(FIXED, FIXED_HOW)


def given(value: float) -> Threshold:
    return Threshold(value, f"given: --noise {value:.3g}")


def wider(found: Iterable[Threshold | None]) -> Threshold:
    """The widest of the derived thresholds (two RUNs: the noisier one's); the fixed one when none was derived."""
    kept = [t for t in found if t is not None]
    return max(kept, key=lambda t: t.value) if kept else fixed()
