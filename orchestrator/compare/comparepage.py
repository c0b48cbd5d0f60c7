"""compare.html for compared RUNs: the ratio B/A of each metric with its interval, coloured by verdict,
in the self-contained page of report/htmlreport.py (plotly.js inlined, opens offline)."""

from __future__ import annotations

from collections import Counter

from orchestrator.compare import comparereport
from orchestrator.compare.ratios import METRICS, CellComparison, Thresholds
from orchestrator.report import charts, htmlreport
from orchestrator.report.htmlreport import _e, _fmt
from orchestrator.results.rundata import Run

VERDICT_COLOURS = {"same within noise": "#7f7f7f", "faster": "#2ca02c", "slower": "#d62728", "mixed": "#ff7f0e",
                   "not comparable": "#9467bd"}


def compare_page(a: Run, b: Run, compared: tuple[CellComparison, ...], noise: Thresholds) -> str:
    """A comparison as a page: the ratio B/A of each metric with its interval, coloured by verdict; the table."""
    figures = []
    for metric, (label, _) in METRICS.items():
        found = [(cell, m) for cell in compared[:charts.MAX_CELLS] for m in cell.metrics
                 if m.metric == metric and m.interval and m.ratio == m.ratio]
        if not found:
            continue
        trace = {"type": "bar", "name": label, "x": [cell.label for cell, _ in found],
                 "y": [m.ratio for _, m in found],
                 "error_y": {"type": "data", "symmetric": False,
                             "array": [m.interval.high - m.ratio for _, m in found],
                             "arrayminus": [m.ratio - m.interval.low for _, m in found]},
                 "marker": {"color": [VERDICT_COLOURS.get(m.verdict, "#7f7f7f") for _, m in found]},
                 "customdata": [m.verdict for _, m in found],
                 "hovertemplate": "%{x}<br>B/A %{y:.3f}<br>%{customdata}<extra></extra>"}
        layout = charts._layout("B / A", shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 1,
                                                  "y1": 1, "line": {"dash": "dot", "color": "#444"}}])
        figures.append(charts.Figure(f"chart-ratio-{metric}", f"{label}: B / A (Hodges-Lehmann)",
                                     "Bar: the Hodges-Lehmann estimate of B / A; error bar: its Mann-Whitney "
                                     "interval (the verdict reads the same interval); colour: verdict (grey same "
                                     f"within noise, green faster, red slower). Threshold: {noise.of(metric).how}, "
                                     f"{noise.of(metric).value:.2%}.", [trace], layout))
    heads = ["cell", "CELL", "metric", "median A", "median B", "B/A (Hodges-Lehmann)", "interval low",
             "interval high", "verdict", "why"]
    body = []
    for row in comparereport.rows(compared):
        values = [row["cell_a"] or row["cell_b"], row["cell"], row.get("metric"), row.get("median_a"),
                  row.get("median_b"), row.get("ratio"), row.get("ci_low"), row.get("ci_high"),
                  row.get("verdict") or row["cell_verdict"], row.get("why") or row.get("reasons")]
        klass = {"slower": "disagree", "not comparable": "failed"}.get(values[8], "")
        body.append(f'<tr class="{klass}">' + "".join(
            f'<td data-v="{v!r}">{v:.4g}</td>' if type(v) is float else f'<td data-v="">{_e(_fmt(v))}</td>'
            for v in values) + "</tr>")
    table = ('<table id="cells" class="sortable"><thead><tr>'
             + "".join(f'<th data-col="{i}">{_e(h)}</th>' for i, h in enumerate(heads))
             + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")
    env = ("<table class='env'><tr><th></th><th>A</th><th>B</th></tr>"
           + "".join(f"<tr><th>{_e(w)}</th><td>{_e(x)}</td><td>{_e(y)}</td></tr>"
                     for w, x, y in comparereport.environment(a, b)) + "</table>")
    counts = Counter(cell.verdict for cell in compared)
    what = (f"A: <code>{_e(a.source)}</code> (RUN {_e(a.info.run_id)}); B: <code>{_e(b.source)}</code> "
            f"(RUN {_e(b.info.run_id)}). CELLs: " + ", ".join(f"{n} {_e(v)}" for v, n in counts.items()) + ".")
    note = ("Click a column heading to sort. One row per CELL and metric; a CELL that is not comparable has one row "
            "with its reasons.")
    return htmlreport.document("Comparison B / A", what, figures, comparereport.warnings(a, b), env, table,
                               written_by="Written by orchestrate compare;", table_note=note)
