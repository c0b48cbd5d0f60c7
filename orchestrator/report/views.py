"""report.html for merged RUNs (``orchestrate merge``): the self-contained page of htmlreport.py filled from
the merged TABLE (every value shown comes from it, never from elsewhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.report import charts, htmlreport, summaryhtml, tradeoff
from orchestrator.report.htmlreport import _e

if TYPE_CHECKING:
    from orchestrator.merge.machines import Merged
    from orchestrator.merge.standings import Summary


def merged_page(merged: Merged, summary: Summary | None = None) -> str:
    """The merged TABLE as a page: charts with one bar per CELL and machine, each RUN's environment, the TABLE."""
    rows = htmlreport._rows(merged.cells)
    many = len(merged.machines) > 1
    charted = [{**r, "engine": f"{r['engine']} @ {r['machine']}"} if many else r for r in rows]
    sizes: dict[str, int] = {}
    for run in merged.runs:
        sizes.update(htmlreport.parameters(run))
    figures = (htmlreport.ordered(charts.speed_figures(charted), tradeoff.memory_figure(charted),
                                  tradeoff.speed_quality_figures(summary) if summary else [])
               + charts.scaling_figures(charted, sizes) + charts.agreement_figure(charted))
    ok = [r for r in rows if r["status"] == "ok"]
    capped = (f"<p class='note'>Charts show the first {charts.MAX_CELLS} of {len(ok)} ok rows; the TABLE has every "
              "row.</p>") if len(ok) > charts.MAX_CELLS else ""
    warning_list = [f"the RUNs measured with different settings (merged with --allow-mixed-settings): {line}"
                    for line in merged.mixed]
    warning_list += [f"{cell_id} was not merged: {reason}" for cell_id, reason in merged.refused.items()]
    warning_list += [f"{cell_id}: no RUN recorded this CELL of the PLAN" for cell_id in merged.missing]
    for run in merged.runs:
        warning_list += [f"RUN {run.get('run_id')}: {text}" for text in htmlreport.warnings(run, [], [])]
    env = []
    for run in merged.runs:
        env.append(f"<tr><th colspan='2'>RUN {_e(run.get('run_id'))}</th></tr>")
        env += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in htmlreport.environment(run)]
    what = (f"{len(merged.runs)} RUN(s) on {len(merged.machines)} machine(s): "
            + "; ".join(f"<b>{_e(m)}</b> ({', '.join(_e(f['run_id']) for f in facts)})"
                        for m, facts in merged.machines.items())
            + f". {len(rows)} rows, {len(ok)} ok. Agreement is computed within each machine; inter-token latency "
              "distributions are in each RUN's own report.html.")
    return htmlreport.document("Merged RUNs", what, figures, warning_list, f'<table class="env">{"".join(env)}</table>',
                               htmlreport._table(rows, ["machine"]), capped,
                               "Written by orchestrate merge from the RUNs' stored records;",
                               summary_html=summaryhtml.section(summary) if summary else "")
