"""The summary's yardstick: which ENGINE (and CELL) every figure is a ratio to, and the words a ratio supports (pure).

The user names the baseline (a MATRIX's ``baseline: llama.cpp``, or ``--baseline``;
``ENGINE/FORMAT`` picks a format too); else it is llama.cpp where the RUN has it (the
REFERENCE CELL's engine), else the first engine in PLAN order. In each group of CELLs
(machine x model x workload x threads) the baseline CELL is that engine's ok CELL in the
format named, else its first full-precision one, else its first. A figure against it is the
Hodges-Lehmann ratio with its interval (stats/ratio.py), and it is put in words only where
the interval supports them: "1.9x faster [1.7, 2.1]" when the whole interval lies beyond the
noise threshold, "same within noise" when the whole interval lies inside it, and the bare
figure otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.models.catalogue import FULL_PRECISION
from orchestrator.stats import ratio as stat

DEFAULT_ENGINE = "llama.cpp"
UNCLEAR = "no clear difference"


@dataclass(frozen=True)
class Choice:
    """The baseline ENGINE (and format, when named) and how it was chosen."""

    engine: str
    format: str | None
    how: str

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.format}" if self.format else self.engine


def parse(text: str) -> tuple[str, str | None]:
    """'llama.cpp' -> ('llama.cpp', None); 'llama.cpp/gguf-q8_0' -> ('llama.cpp', 'gguf-q8_0')."""
    engine, _, fmt = text.strip().partition("/")
    return engine, fmt or None


def choose(engines_in_order: Sequence[str], given: str | None = None, matrix: str | None = None) -> Choice:
    """The baseline: ``given`` (--baseline), else the MATRIX's, else llama.cpp if present, else the first engine."""
    if given:
        return Choice(*parse(given), "chosen with --baseline")
    if matrix:
        return Choice(*parse(matrix), "the MATRIX's baseline")
    if DEFAULT_ENGINE in engines_in_order or not engines_in_order:
        return Choice(DEFAULT_ENGINE, None, "by default: llama.cpp is the REFERENCE CELL's engine; set `baseline:` in "
                                            "the MATRIX or --baseline to choose")
    return Choice(engines_in_order[0], None, "by default: the first engine of the PLAN, as no llama.cpp CELL is here; "
                                             "set `baseline:` in the MATRIX or --baseline to choose")


def baseline_cell(choice: Choice, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The baseline CELL among one group's rows (PLAN order): the chosen engine's ok CELL in the chosen format, else
    its first full-precision one, else its first; None when the engine has no ok CELL there."""
    mine = [r for r in rows if r.get("engine") == choice.engine and r.get("status") == "ok"
            and not r.get("test_double")]
    if choice.format:
        return next((r for r in mine if r.get("format") == choice.format), None)
    for fmt in FULL_PRECISION:
        found = next((r for r in mine if r.get("format") == fmt), None)
        if found is not None:
            return found
    return mine[0] if mine else None


@dataclass(frozen=True)
class Versus:
    """One metric of a CELL against its baseline CELL: the one statistic, the threshold it is read against, and
    whether a higher value is better (rates) or a lower one (times)."""

    ratio: stat.Ratio
    threshold: float
    higher_better: bool

    @property
    def factor(self) -> tuple[float, float, float]:
        """(estimate, low, high) as a speed factor: above 1 is faster than the baseline, for rates and times alike."""
        return stat.speedup(self.ratio, self.higher_better)

    @property
    def words(self) -> str:
        """faster, slower, same within noise, or UNCLEAR: what the interval supports."""
        if stat.within(self.ratio, self.threshold):
            return stat.SAME
        verdict, _ = stat.verdict(self.ratio, self.threshold, self.higher_better)
        return verdict if verdict != stat.SAME else UNCLEAR

    @property
    def text(self) -> str:
        """'1.9x faster [1.7, 2.1]', '2.1x slower [1.9, 2.4]', 'same within noise [0.98, 1.03]' or '0.97x [0.88, 1.07]'."""
        estimate, low, high = self.factor
        words = self.words
        if words == stat.FASTER:
            return f"{factor(estimate)}x faster [{factor(low)}, {factor(high)}]"
        if words == stat.SLOWER:
            return f"{factor(1 / estimate)}x slower [{factor(1 / high)}, {factor(1 / low)}]"
        if words == stat.SAME:
            return f"same within noise [{factor(low)}, {factor(high)}]"
        return f"{factor(estimate)}x [{factor(low)}, {factor(high)}]"


def factor(value: float) -> str:
    """A speed factor as the summary writes it: two decimals below 10 (1.90, 0.87), three figures above (12.3)."""
    return f"{value:.2f}" if value < 10 else f"{value:.3g}"


def versus(samples: Sequence[float], baseline_samples: Sequence[float], threshold: float,
           higher_better: bool) -> Versus | None:
    """A CELL's samples of one metric against the baseline CELL's (None when either side has none)."""
    mine = tuple(v for v in samples if 0 < v < float("inf"))
    theirs = tuple(v for v in baseline_samples if 0 < v < float("inf"))
    if not mine or not theirs:
        return None
    return Versus(stat.ratio(theirs, mine), threshold, higher_better)
