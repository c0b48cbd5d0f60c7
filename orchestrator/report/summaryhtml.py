"""The summary section at the top of report.html: the same tables as summary.md, coloured by what each ratio
supports (pure: a merge/standings.Summary in, escaped HTML out)."""

from __future__ import annotations

import html
import re

from orchestrator.merge.baseline import UNCLEAR
from orchestrator.merge.standings import METRICS, Standing, Summary
from orchestrator.report import summarymd
from orchestrator.stats import ratio as stat

WORD_CLASSES = {stat.FASTER: "faster", stat.SLOWER: "slower", stat.SAME: "same", UNCLEAR: "unclear"}
STYLE = """
section#summary table{margin:.3em 0 1.2em} section#summary td.faster{color:#187a18;font-weight:bold}
section#summary td.slower{color:#a00;font-weight:bold} section#summary td.same{color:#555}
section#summary td.base{color:#1f5fa8} section#summary tr[data-ranked="no"] td{color:#888;font-style:italic}
section#summary td:nth-child(2), section#summary td:last-child{text-align:left} section#summary td:last-child{min-width:12em}
section#summary .scroll{max-height:none}
"""


def inline(text: str) -> str:
    """Escape, then the summary's Markdown marks as HTML: **bold**, *italic*, `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\*([^*]+)\*", r"<i>\1</i>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _classes(standing: Standing, summary: Summary) -> list[str]:
    """A class per cell of the row: the word class of each 'vs baseline' cell, '' elsewhere."""
    out = ["", ""]
    for metric in METRICS:
        found = standing.versus.get(metric)
        out += ["", "base" if standing.is_baseline else WORD_CLASSES.get(found.words, "") if found else ""]
    return out + [""] * (2 + len(summary.quality_columns))


def section(summary: Summary) -> str:
    """<section id="summary">: the method, then one ranked table per group."""
    if not summary.groups:
        return '<section id="summary"><p>No generation CELL in this TABLE: nothing to rank.</p></section>'
    parts = ['<section id="summary">'] + [f'<p class="note">{inline(line)}</p>' for line in summarymd.method_lines(summary)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in summarymd.headings(summary))
    for group in summary.groups[:summarymd.MAX_GROUPS]:
        base = group.baseline
        said = (f"baseline CELL: {base.get('engine')} {base.get('format')} <code>{html.escape(str(base.get('cell_id')))}"
                "</code>" if base is not None else f"no ok {html.escape(summary.choice.label)} CELL here: no ratios")
        parts.append(f'<h3>{html.escape(group.title)}</h3><p class="note">{len(group.ranked)} of '
                     f'{len(group.standings)} CELL(s) ranked; {said}.</p>')
        rows = []
        listed, more = summarymd.shown(group)
        for standing in listed:
            texts = summarymd.cells(standing, summary)
            ranked = "no" if standing.rank is None else "yes"
            rows.append(f'<tr data-ranked="{ranked}">' + "".join(
                f'<td class="{c}">{html.escape(t)}</td>' for t, c in zip(texts, _classes(standing, summary))) + "</tr>")
        parts.append(f'<div class="scroll"><table class="summary"><thead><tr>{head}</tr></thead>'
                     f'<tbody>{"".join(rows)}</tbody></table></div>')
        if more:
            parts.append(f'<p class="note">... and {more} more CELL(s) of this group: see the TABLE.</p>')
    if len(summary.groups) > summarymd.MAX_GROUPS:
        parts.append(f'<p class="note">{html.escape(summarymd.more_groups(summary))}</p>')
    return "".join(parts) + "</section>"
