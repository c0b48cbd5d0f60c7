"""summary.md: the short Markdown answer before the details, fit for a CI job summary or a pull-request comment.

Pure: a merge/standings.Summary in, text out. Per group (machine x model x workload x
threads) one table: the engines and formats ranked by decode rate, each figure beside its
ratio to the baseline CELL in words the interval supports, peak memory, and the quality
columns that some CELL measured; CELLs not ranked follow, with the reason.
"""

from __future__ import annotations

from orchestrator.engines import ENGINES
from orchestrator.merge import qualitycols
from orchestrator.merge.baseline import factor
from orchestrator.merge.standings import METRICS, Group, Standing, Summary
from orchestrator.stats import ratio as stat

NOT_RANKED = "-"
MAX_SHOWN = 40  # CELLs per group in the summary (a job summary must stay short); the TABLE has every one
MAX_GROUPS = 50  # groups in the summary; report.html's charts and the TABLE have the others


def shown(group: Group) -> tuple[tuple[Standing, ...], int]:
    """The group's CELLs the summary lists (the ranked first) and how many more it leaves to the TABLE."""
    return group.standings[:MAX_SHOWN], max(0, len(group.standings) - MAX_SHOWN)


def number(value, digits: int = 1) -> str:
    """A figure as the summary writes it; '-' for a value not measured."""
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def versus_text(standing: Standing, metric: str) -> str:
    if standing.is_baseline:
        return "baseline"
    found = standing.versus.get(metric)
    return found.text if found is not None else "-"


def memory_text(standing: Standing) -> str:
    mib = number(standing.row.get("peak_memory_mib_median"), 0)
    if standing.is_baseline or standing.memory_ratio is None or mib == "-":
        return mib
    return f"{mib} ({factor(standing.memory_ratio)}x)"


def headings(summary: Summary) -> list[str]:
    out = ["#", "engine format"]
    for heading, _, _ in METRICS.values():
        out += [heading, "vs baseline"]
    out += ["peak MiB (x baseline)"] + [c.heading for c in summary.quality_columns] + ["not ranked because"]
    return out


def cells(standing: Standing, summary: Summary) -> list[str]:
    """One row of a group's table, as text (the HTML page colours the same texts)."""
    out = [str(standing.rank) if standing.rank is not None else NOT_RANKED, standing.label]
    for metric in METRICS:
        out += [number(standing.median(metric), 1), versus_text(standing, metric)]
    quality = qualitycols.texts(standing.quality, standing.row)
    out += [memory_text(standing)] + [quality[c.key] for c in summary.quality_columns] + [standing.unranked or ""]
    return out


def method_lines(summary: Summary) -> list[str]:
    """What every figure is and which thresholds were used (once per machine)."""
    lines = [f"Baseline: **{summary.choice.label}** ({summary.choice.how}); in each group its full-precision CELL "
             "unless a format is named. Each `vs baseline` is the Hodges-Lehmann ratio over the timed repetitions "
             "with its 95 % Mann-Whitney interval, as a speed factor (above 1: faster than the baseline, for times as "
             f"for rates); in words only where the interval supports them: *{stat.FASTER}*/*{stat.SLOWER}* when the "
             f"whole interval lies beyond the noise threshold, *{stat.SAME}* when it lies wholly inside it. Peak MiB: "
             "the CELL's cgroup peak (one reading per CELL: no interval). Ranked by median decode tok/s."]
    for machine, found in summary.thresholds.items():
        where = f" on {machine}" if machine else ""
        described = "; ".join(f"{METRICS[m][0]} {stat.percent(t.value)}" for m, t in found.items())
        hows = list(dict.fromkeys(t.how.split(" (")[0] if t.derived else t.how for t in found.values()))
        lines.append(f"Noise thresholds{where}: {described} ({'; '.join(hows)}).")
    return lines + below_best_lines(summary)


def below_best_lines(summary: Summary) -> list[str]:
    """One line per ENGINE of the TABLE whose figure is known to sit below the engine's own faster path."""
    named = dict.fromkeys(str(row.get("engine")) for row in summary.rows)
    return [f"**{name}** is not the engine at its best: {ENGINES[name].below_best}." for name in named
            if name in ENGINES and ENGINES[name].below_best]


def group_lines(group: Group, summary: Summary) -> list[str]:
    base = group.baseline
    said = (f"baseline CELL: {base.get('engine')} {base.get('format')} `{base.get('cell_id')}`" if base is not None
            else f"no ok {summary.choice.label} CELL here: no ratios")
    head = headings(summary)
    lines = [f"### {group.title}", "", f"{len(group.ranked)} of {len(group.standings)} CELL(s) ranked; {said}.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    listed, more = shown(group)
    lines += ["| " + " | ".join(_escape(c) for c in cells(s, summary)) + " |" for s in listed]
    return lines + (["", f"... and {more} more CELL(s) of this group: see the TABLE."] if more else []) + [""]


def markdown(summary: Summary, title: str) -> str:
    """The whole summary.md."""
    lines = [f"## {title}", ""]
    if not summary.groups:
        return "\n".join(lines + ["No generation CELL in this TABLE: nothing to rank.", ""])
    lines += [*method_lines(summary), ""]
    for group in summary.groups[:MAX_GROUPS]:
        lines += group_lines(group, summary)
    if len(summary.groups) > MAX_GROUPS:
        lines.append(more_groups(summary))
    return "\n".join(lines).rstrip("\n") + "\n"


def more_groups(summary: Summary) -> str:
    return (f"... and {len(summary.groups) - MAX_GROUPS} more group(s) of {len(summary.groups)}: see the TABLE "
            "(tables/cells.*).")


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
