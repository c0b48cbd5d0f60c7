"""report.md: the RUN's (or a merge's) report document, generated entirely from its data (pure).

An executive summary, the method (report/docmethod.py), the results by engine, model size and
thread count (report/docresults.py), and conclusions drawn mechanically: each sentence is a
rule applied to the summary (merge/standings.py), the thread scaling (merge/scaling.py) and
the TABLE, and each figure in it is one of theirs. No number is written by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.merge import baseline as yardstick
from orchestrator.merge import qualitycols
from orchestrator.merge.baseline import factor
from orchestrator.merge.scaling import Scaling
from orchestrator.merge.standings import Group, Standing, Summary
from orchestrator.report import docmethod, docresults
from orchestrator.report.summarymd import MAX_GROUPS, more_groups, number
from orchestrator.stats import front
from orchestrator.stats import ratio as stat

MAX_NAMED = 12  # CELLs named in one sentence; MAX_LISTED in one list
MAX_LISTED = 100


def _names(items: Sequence[str]) -> str:
    """'a, b, c' or 'a, b, ... and 9 more'."""
    items = list(dict.fromkeys(items))
    if len(items) <= MAX_NAMED:
        return ", ".join(items)
    return ", ".join(items[:MAX_NAMED]) + f", ... and {len(items) - MAX_NAMED} more"


def _against(standing: Standing, group: Group) -> str:
    """How a CELL's decode rate stands against its group's baseline, in the words its interval supports."""
    if standing.is_baseline:
        return "it is the baseline"
    found = standing.versus.get("gen_tps")
    base = group.baseline
    if found is None or base is None:
        return "no ratio to the baseline (no baseline CELL here)"
    name = f"{base.get('engine')} {base.get('format')}"
    words = found.words
    if words in (stat.FASTER, stat.SLOWER):
        return f"{found.text} than the baseline {name}"
    if words == stat.SAME:
        return f"{found.text} as the baseline {name}"
    return f"{found.text} the baseline {name}'s rate: the interval supports no word"


def _quality(standing: Standing) -> str:
    loss = standing.quality.get("ppl_vs_f32")
    agree = qualitycols.texts(standing.quality, standing.row)["agree"]
    parts = [f"perplexity {loss:+.2%} over F32" if isinstance(loss, float) else "perplexity not measured"]
    if agree != "-":
        parts.append(f"greedy tokens agreeing with its reference: {agree}")
    return ", ".join(parts)


def _memory(standing: Standing) -> str:
    mib = number(standing.row.get("peak_memory_mib_median"), 0)
    ratio = standing.memory_ratio
    return f"{mib} MiB" + (f" ({factor(ratio)}x the baseline's)" if ratio is not None else "")


def front_of(group: Group, loss: str = "ppl_vs_f32") -> list[Standing]:
    """The group's ranked CELLs with a measured loss that no other beats on both decode rate and that loss."""
    measured = [s for s in group.ranked if isinstance(s.quality.get(loss), (int, float))]
    kept = front.front([(s.median("gen_tps"), float(s.quality[loss])) for s in measured])
    return sorted((s for s, k in zip(measured, kept) if k), key=lambda s: -s.median("gen_tps"))


def executive(summary: Summary) -> list[str]:
    lines = ["## Executive summary", "", f"Baseline: {summary.choice.label} ({summary.choice.how}).", ""]
    if not summary.groups:
        return lines + ["No generation CELL in this TABLE: nothing to rank.", ""]
    for group in summary.groups[:MAX_GROUPS]:
        ranked = group.ranked
        if not ranked:
            lines.append(f"- **{group.title}**: no CELL could be ranked ({len(group.standings)} shown, each with the "
                         "reason in the summary).")
            continue
        top = ranked[0]
        lines.append(f"- **{group.title}**: **{top.label}** decodes fastest of {len(ranked)} ranked CELL(s), "
                     f"{number(top.median('gen_tps'))} tok/s, {_against(top, group)}; {_quality(top)}; peak memory "
                     f"{_memory(top)}." + (f" {len(group.standings) - len(ranked)} CELL(s) not ranked."
                                                   if len(group.standings) > len(ranked) else ""))
        best = front_of(group)
        if best:
            lines.append("  Not beaten on both decode rate and perplexity: " + "; ".join(
                f"{s.label} ({number(s.median('gen_tps'))} tok/s, {float(s.quality['ppl_vs_f32']):+.2%})"
                for s in best[:MAX_NAMED]) + (f"; ... and {len(best) - MAX_NAMED} more" if len(best) > MAX_NAMED
                                              else "") + ".")
    return lines + ([more_groups(summary)] if len(summary.groups) > MAX_GROUPS else []) + [""]


def conclusions(summary: Summary, scaled: Sequence[Scaling]) -> list[str]:
    """Numbered conclusions, each a rule applied to the data."""
    out: list[str] = []
    for group in summary.groups[:MAX_GROUPS]:
        said: dict[str, list[str]] = {stat.FASTER: [], stat.SAME: [], stat.SLOWER: [], yardstick.UNCLEAR: []}
        for standing in group.ranked:
            found = standing.versus.get("gen_tps")
            if found is not None:
                said[found.words].append(f"{standing.label} ({found.text})")
        if group.baseline is not None and any(said.values()):
            base = f"{group.baseline.get('engine')} {group.baseline.get('format')}"
            parts = [f"{label} than {base}: {_names(items)}" for label, items in
                     ((f"decode {stat.FASTER}", said[stat.FASTER]), (f"decode {stat.SLOWER}", said[stat.SLOWER]))
                     if items]
            parts += [f"the {stat.SAME} as {base}: {_names(said[stat.SAME])}"] if said[stat.SAME] else []
            parts += ([f"no clear difference from {base} (interval reaching across the threshold): "
                       f"{_names(said[yardstick.UNCLEAR])}"] if said[yardstick.UNCLEAR] else [])
            out.append(f"{group.title}: " + "; ".join(parts) + ".")
        light = [s for s in group.ranked if isinstance(s.row.get("peak_memory_mib_median"), float)
                 and s.row.get("peak_memory_mib_median") == s.row.get("peak_memory_mib_median")]
        if len(light) > 1:
            low = min(light, key=lambda s: s.row["peak_memory_mib_median"])
            high = max(light, key=lambda s: s.row["peak_memory_mib_median"])
            out.append(f"{group.title}: the least peak memory among ranked CELLs is {low.label}'s, "
                       f"{number(low.row['peak_memory_mib_median'], 0)} MiB; the most, {high.label}'s, "
                       f"{number(high.row['peak_memory_mib_median'], 0)} MiB.")
        unmeasured = [s.label for s in group.ranked if s.quality.get("ppl_vs_f32") is None]
        if unmeasured:
            out.append(f"{group.title}: the quality loss of {_names(unmeasured)} was not measured in this RUN "
                       "(no perplexity CELL of that engine and format): their speed is shown without its cost.")
    for item in scaled[:MAX_LISTED]:
        out.append(f"{item.label}: {item.fewest.get('threads')} -> {item.most.get('threads')} threads, decode "
                   f"{item.versus.text} (efficiency {item.efficiency:.2f}).")
    why = Counter(reason.split(" (")[0].split(":")[0] for _, reason in docresults.reasons(summary))
    if why:
        out.append("Not ranked: " + "; ".join(f"{n} CELL(s): {reason}" for reason, n in why.most_common())
                   + ". Their figures are in the summary and the TABLE, not in any ranking or front.")
    return ["## Conclusions", "", "Each drawn by a rule from the figures above.", "",
            *[f"{i}. {line}" for i, line in enumerate(out, 1)], ""]


def report(title: str, rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]], summary: Summary,
           scaled: Sequence[Scaling], parameters: Mapping[str, int]) -> str:
    """The whole report.md."""
    lines = [f"# {title}", "", "Generated by orchestrate from the stored records and run.json: every figure below is "
             "one of the RUN's.", "", *executive(summary), *docmethod.method(rows, runs, summary),
             *docresults.results(summary, parameters, scaled), *conclusions(summary, scaled)]
    unranked = docresults.reasons(summary)
    if unranked:
        lines += ["## CELLs shown but not ranked", "", *[f"- {cell}: {why}" for cell, why in unranked[:MAX_LISTED]]]
        lines += [f"- ... and {len(unranked) - MAX_LISTED} more: see the summary and the TABLE"
                  if len(unranked) > MAX_LISTED else "", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
