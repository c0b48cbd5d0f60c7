"""The summary a RUN (or a merge) answers first: per machine x model x workload x threads, the engines and formats
ranked by decode rate, each against the baseline, with quality beside (pure).

Inputs are the CELL TABLE's rows and the repetition TABLE's columns (as merge/frames.py and
merge/machines.py make them); nothing else is read. Each figure against the baseline is one
statistic, the Hodges-Lehmann ratio and its interval (merge/baseline.py), read against the
noise threshold of the CELLs' own machine: derived from its between-round spread where it
has rounds, else fixed (stats/threshold.py). CELLs that did not end ok, that disagree with
their reference (greedy tokens, or their format's perplexity), that tripped a noise guard,
or that are a TEST DOUBLE are shown, not ranked, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.merge import baseline as yardstick
from orchestrator.merge import qualitycols
from orchestrator.stats import threshold as noise_threshold

# metric -> (heading, TABLE median column, higher is better)
METRICS = {"gen_tps": ("decode tok/s", "gen_tps_median", True), "prompt_tps": ("prefill tok/s", "prompt_tps_median", True),
           "ttft_ms": ("TTFT ms", "ttft_ms_median", False)}
Key = tuple[Any, Any]  # (machine or None, cell id)
Samples = Mapping[Key, Mapping[str, list[tuple[Any, float]]]]  # metric -> [(round, value)]


@dataclass(frozen=True)
class Standing:
    """One CELL's line in the summary."""

    row: Mapping[str, Any]  # its TABLE row
    rank: int | None  # 1 = the fastest decode of its group; None when not ranked
    unranked: str | None  # why it is not ranked
    versus: Mapping[str, yardstick.Versus | None]  # metric -> against the baseline CELL (None for the baseline)
    memory_ratio: float | None  # peak memory / the baseline's (one reading each: no interval)
    quality: Mapping[str, Any]  # qualitycols key -> value, None where not measured
    is_baseline: bool = False

    def median(self, metric: str) -> float:
        value = self.row.get(METRICS[metric][1])
        return float(value) if isinstance(value, (int, float)) and value == value else float("nan")

    @property
    def label(self) -> str:
        options = self.row.get("engine_options")
        extra = f" {options}" if isinstance(options, str) and options not in ("", "{}") else ""
        return f"{self.row.get('engine')}{extra} {self.row.get('format')}"


@dataclass(frozen=True)
class Group:
    """The CELLs of one machine x model x workload x threads, ranked."""

    machine: str | None
    model: str
    workload: str
    threads: int
    baseline: Mapping[str, Any] | None  # the baseline CELL's row
    standings: tuple[Standing, ...]

    @property
    def title(self) -> str:
        where = f"{self.machine}: " if self.machine else ""
        return f"{where}{self.model}, {self.workload}, {self.threads} thread{'s' if self.threads != 1 else ''}"

    @property
    def ranked(self) -> tuple[Standing, ...]:
        return tuple(s for s in self.standings if s.rank is not None)


@dataclass(frozen=True)
class Summary:
    """The groups, the baseline and thresholds they were judged with, and what they were made from."""

    choice: yardstick.Choice
    thresholds: Mapping[Any, Mapping[str, noise_threshold.Threshold]]  # machine -> metric -> threshold
    groups: tuple[Group, ...]
    quality_columns: tuple[qualitycols.QualityColumn, ...]
    rows: tuple[Mapping[str, Any], ...] = ()  # every TABLE row
    samples: Samples = field(default_factory=dict)  # (machine, cell id) -> metric -> [(round, value)]


def samples(repetitions: Mapping[str, Sequence]) -> dict[Key, dict[str, list[tuple[Any, float]]]]:
    """(machine, cell id) -> metric -> [(round, value)] from the repetition TABLE's columns."""
    ids = list(repetitions.get("cell_id", []))
    machines = list(repetitions.get("machine", [None] * len(ids)))
    rounds = list(repetitions.get("round", [None] * len(ids)))
    out: dict[Key, dict[str, list[tuple[Any, float]]]] = {}
    for metric in METRICS:
        for machine, cell_id, in_round, value in zip(machines, ids, rounds, list(repetitions.get(metric, []))):
            if isinstance(value, (int, float)) and 0 < value < float("inf"):
                out.setdefault((machine, cell_id), {}).setdefault(metric, []).append((in_round, float(value)))
    return out


def thresholds(found: Samples) -> dict[Any, dict[str, noise_threshold.Threshold]]:
    """Each machine's threshold per metric: derived from its CELLs' round spreads, else fixed (stats/threshold.py)."""
    out: dict[Any, dict[str, noise_threshold.Threshold]] = {}
    for machine in dict.fromkeys(m for m, _ in found):
        mine = [v for (m, _), v in found.items() if m == machine]
        out[machine] = {}
        for metric in METRICS:
            spreads = []
            for cell in mine:
                by_round: dict[Any, list[float]] = {}
                for in_round, value in cell.get(metric, []):
                    if in_round is not None:
                        by_round.setdefault(in_round, []).append(value)
                spreads.append(noise_threshold.round_spread(by_round))
            what = f"the RUN(s) on {machine}" if machine else "this RUN"
            out[machine][metric] = noise_threshold.derived(spreads, what) or noise_threshold.fixed()
    return out


def unranked_reason(row: Mapping[str, Any], perplexity_row: Mapping[str, Any] | None) -> str | None:
    """Why a CELL is shown but not ranked (None: it is ranked)."""
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason')}"
    if row.get("test_double"):
        return "a TEST DOUBLE: it measures no inference engine"
    if row.get("agreement") == "DISAGREE":
        return (f"disagrees with its reference {row.get('agreement_reference')}: {_int(row.get('agreement_tokens'))} of "
                f"{_int(row.get('agreement_of'))} greedy tokens agree")
    if perplexity_row is not None and perplexity_row.get("ppl_agreement") == "DISAGREE":
        return (f"its perplexity CELL {perplexity_row.get('cell_id')} disagrees with its reference by "
                f"{perplexity_row.get('ppl_vs_reference'):+.2%}")
    if isinstance(row.get("noise_flags"), str) and row.get("noise_flags"):
        return f"noise guards tripped ({row.get('noise_flags')})"
    if not isinstance(row.get("gen_tps_median"), (int, float)) or row.get("gen_tps_median") != row.get("gen_tps_median"):
        return "no decode rate"
    return None


def is_perplexity(row: Mapping[str, Any]) -> bool:
    """Whether a TABLE row is an ok perplexity CELL's (it has a perplexity, or a verdict on one)."""
    value = row.get("perplexity")
    return isinstance(row.get("ppl_agreement"), str) or (isinstance(value, (int, float)) and value == value)


def _int(value) -> str:
    return str(int(value)) if isinstance(value, (int, float)) and value == value else "?"


def _perplexity_rows(rows: Sequence[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """(machine, engine, options, model, format[, threads]) -> its first ok perplexity CELL (any workload of that
    kind), with and without the thread count."""
    out: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        if row.get("status") == "ok" and is_perplexity(row):
            key = (row.get("machine"), row.get("engine"), row.get("engine_options"), row.get("model"), row.get("format"))
            out.setdefault(key, row)
            out.setdefault((*key, row.get("threads")), row)
    return out


def perplexity_row(row: Mapping[str, Any], found: Mapping[tuple, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The perplexity CELL of a generation CELL's engine x options x model x format: same threads where there is one."""
    key = (row.get("machine"), row.get("engine"), row.get("engine_options"), row.get("model"), row.get("format"))
    return found.get((*key, row.get("threads"))) or found.get(key)


def summarise(rows: Sequence[Mapping[str, Any]], repetitions: Mapping[str, Sequence], choice: yardstick.Choice
              ) -> Summary:
    """The summary of a TABLE (pure): every generation CELL in its group, ranked, against the baseline."""
    found = samples(repetitions)
    chosen = thresholds(found)
    ppl = _perplexity_rows(rows)
    scoring = {row.get("workload") for row in rows if is_perplexity(row)}  # a workload's CELLs are all of one kind
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("workload") not in scoring:
            groups.setdefault((row.get("machine"), row.get("model"), row.get("workload"), row.get("threads")),
                              []).append(row)
    out, every_quality = [], []
    machines = list(dict.fromkeys(key[0] for key in groups))  # a merge: each machine's groups together
    for (machine, model, workload, threads), members in sorted(groups.items(), key=lambda g: machines.index(g[0][0])):
        base = yardstick.baseline_cell(choice, members)
        limits = chosen.get(machine) or {m: noise_threshold.fixed() for m in METRICS}
        standings = []
        for row in members:
            partner = perplexity_row(row, ppl) if row.get("status") == "ok" else None
            quality = qualitycols.values(row, partner)
            every_quality.append(quality)
            standings.append(_standing(row, base, partner, quality, found, limits))
        ranked = sorted((s for s in standings if s.unranked is None), key=lambda s: -s.median("gen_tps"))
        places = {id(s): i + 1 for i, s in enumerate(ranked)}
        standings = [Standing(s.row, places.get(id(s)), s.unranked, s.versus, s.memory_ratio, s.quality,
                              s.is_baseline) for s in ranked + [s for s in standings if s.unranked is not None]]
        out.append(Group(machine, str(model), str(workload), int(threads), base, tuple(standings)))
    return Summary(choice, chosen, tuple(out), qualitycols.shown(every_quality), tuple(rows), found)


def _standing(row, base, partner, quality, found, limits) -> Standing:
    key, base_key = (row.get("machine"), row.get("cell_id")), None
    versus: dict[str, yardstick.Versus | None] = {m: None for m in METRICS}
    memory = None
    if base is not None:
        base_key = (base.get("machine"), base.get("cell_id"))
    if base is not None and row.get("status") == "ok" and key != base_key:
        for metric, (_, _, higher_better) in METRICS.items():
            versus[metric] = yardstick.versus([v for _, v in found.get(key, {}).get(metric, [])],
                                              [v for _, v in found.get(base_key, {}).get(metric, [])],
                                              limits[metric].value, higher_better)
        mine, theirs = row.get("peak_memory_mib_median"), base.get("peak_memory_mib_median")
        if all(isinstance(v, (int, float)) and v == v and v > 0 for v in (mine, theirs)):
            memory = mine / theirs
    return Standing(row, None, unranked_reason(row, partner), versus, memory, quality, key == base_key)
