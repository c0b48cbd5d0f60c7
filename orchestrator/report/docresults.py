"""report.md's results: decode rate by engine, by model size and by thread count, from the summary and the TABLE
(pure; every number is a figure of the RUN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.merge.scaling import Scaling
from orchestrator.merge.standings import Standing, Summary
from orchestrator.report.summarymd import number

UNRANKED_MARK = " (not ranked)"
MAX_ROWS = 100  # rows of one results table; the TABLE has every CELL


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]]


def _decode(standing: Standing) -> str:
    return number(standing.median("gen_tps")) + (UNRANKED_MARK if standing.rank is None else "")


def by_engine(summary: Summary) -> list[str]:
    """Median decode tok/s of each engine x format (columns) in each group (rows)."""
    labels = list(dict.fromkeys(s.label for g in summary.groups for s in g.standings))
    body = []
    for group in summary.groups[:MAX_ROWS]:
        found = {s.label: _decode(s) for s in group.standings}
        body.append([group.title] + [found.get(label, "") for label in labels])
    more = [f"... and {len(summary.groups) - MAX_ROWS} more group(s): see the TABLE.", ""] \
        if len(summary.groups) > MAX_ROWS else []
    return ["### By engine", "", "Median decode tok/s of every engine and format in each group; "
            f"`{UNRANKED_MARK.strip()}`: shown but not ranked (the summary says why).", "",
            *_table(["group", *labels], body), "", *more]


def by_model_size(summary: Summary, parameters: Mapping[str, int]) -> list[str]:
    """Decode tok/s of each engine x format x threads (rows) for each model (columns, smallest first)."""
    models = sorted(dict.fromkeys(g.model for g in summary.groups), key=lambda m: (parameters.get(m) or 0, m))
    sizes = {m: f"{m} ({parameters[m]:,} parameters)" if parameters.get(m) else m for m in models}
    if len(models) < 2:
        said = sizes[models[0]] if models else "none"
        return ["### By model size", "", f"One model in this TABLE: {said}; no size scaling to show.", ""]
    cells: dict[str, dict[str, str]] = {}
    for group in summary.groups:
        where = f" @ {group.machine}" if group.machine else ""
        for standing in group.standings:
            key = f"{standing.label} t{group.threads} {group.workload}{where}"
            cells.setdefault(key, {})[group.model] = _decode(standing)
    body = [[key] + [found.get(m, "") for m in models] for key, found in list(cells.items())[:MAX_ROWS]]
    return ["### By model size", "", "Median decode tok/s of each engine, format and thread count for each model, "
            "smallest model first.", "", *_table(["engine format threads", *[sizes[m] for m in models]], body), ""]


def by_threads(found: Sequence[Scaling]) -> list[str]:
    """Each engine x format at its most threads against its fewest: the one statistic, and the efficiency."""
    if not found:
        return ["### By thread count", "", "No engine and format ran at two or more thread counts with a decode rate "
                "in this TABLE.", ""]
    body = [[s.label, f"{s.fewest.get('threads')} -> {s.most.get('threads')}", number(s.fewest.get("gen_tps_median")),
             number(s.most.get("gen_tps_median")), s.versus.text, f"{s.efficiency:.2f}"] for s in found[:MAX_ROWS]]
    return ["### By thread count", "", "Decode rate at the most threads against the fewest: the Hodges-Lehmann ratio "
            "with its interval, in words where the interval supports them; efficiency: the ratio's estimate over the "
            "ratio of thread counts (1.00: twice the threads, twice the rate).", "",
            *_table(["engine format model workload", "threads", "decode tok/s (fewest)", "decode tok/s (most)",
                     "most / fewest", "efficiency"], body), ""]


def results(summary: Summary, parameters: Mapping[str, int], found: Sequence[Scaling]) -> list[str]:
    return ["## Results", "", *by_engine(summary), *by_model_size(summary, parameters), *by_threads(found)]


def reasons(summary: Summary) -> list[tuple[str, str]]:
    """(CELL, why) of every CELL shown but not ranked."""
    out: list[tuple[str, str]] = []
    for group in summary.groups:
        out += [(f"{s.label} ({group.title}) `{s.row.get('cell_id')}`", s.unranked) for s in group.standings
                if s.unranked is not None]
    return out
