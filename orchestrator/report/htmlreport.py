"""report.html: one self-contained page with a RUN's charts, environment, warnings and full TABLE.

The page opens offline: plotly.js is read from the pinned ``plotly`` Python package at
report time and inlined (no CDN, no network). Figures are plain plotly.js specs from
``orchestrator.report.charts``; every number on the page comes from the RUN's stored records.
"""

from __future__ import annotations

import html
import importlib.metadata
import importlib.resources
import json
import re
from typing import TYPE_CHECKING

from orchestrator.merge import sampling, standings
from orchestrator.models import catalogue
from orchestrator.report import charts, summaryhtml, tradeoff
from orchestrator.report.exporters import SUMMARY_COLUMNS, agree_text, ppl_text
from orchestrator.results.reader import as_records
from orchestrator.stats import certainty, describe

if TYPE_CHECKING:
    import pandas as pd

TABLE_NOTE = ("Click a column heading to sort. Rates are medians over the timed repetitions; `gen sd` is their "
              "standard deviation and `n` their number. Peak MiB and CPU s are read from the CELL's cgroup outside "
              "the container. ITL p50/p95/p99: percentiles of each repetition's inter-token latencies by "
              f"{describe.PERCENTILE_METHOD}, then their median over the repetitions. Per core: divided by `per-core "
              "threads` (the threads the engine was seen to use where they differ from those requested). Per GHz: "
              "each row by its own frequency, `GHz`, from where `GHz from` says (sampled on the CELL's CPUs while it "
              "ran, advertised, or the host's snapshot). CSV and JSON in tables/ carry every column.")


def plotly_js() -> tuple[str, str]:
    """plotly.js as shipped in the pinned plotly package, and its version."""
    text = (importlib.resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    found = re.search(r"plotly\.js v([0-9][^\s*]*)", text[:400])
    return text, found.group(1) if found else f"from plotly {importlib.metadata.version('plotly')}"


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_for_script(document) -> str:
    """JSON that is safe inside a <script> element (no '</', NaN as null)."""
    text = json.dumps(document, allow_nan=False, separators=(",", ":"), default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def parameters(run: dict) -> dict[str, int]:
    """Parameter count of each model: run.json's models first, else the catalogue's definition."""
    found = {}
    for key, item in run.get("models", {}).items():
        if isinstance(item, dict) and item.get("parameters"):
            found[key.split("/")[0]] = int(item["parameters"])
    try:
        for entry in catalogue.load().values():
            if entry.id not in found:
                count = catalogue.parameter_count(entry.architecture) if entry.synthetic else entry.published_parameters
                if count:
                    found[entry.id] = int(count)
    except Exception:  # noqa: BLE001 - the catalogue is a fallback only; the page must still be written
        pass
    return found


def warnings(run: dict, records: list[dict], rows: list[dict]) -> list[str]:
    """What a reader must know before trusting the figures, each saying what to do about it."""
    host = run.get("host", {})
    found = [f"{line}: CELLs run at different times met different machines; compare them with care"
             for line in sampling.machine_drift(as_records(records))]
    if run.get("status") != "finished":
        found.append(f"The RUN is {run.get('status')}" + (f": {run['error']}" if run.get("error") else "")
                     + "; CELLs that did not run are missing from the TABLE.")
    freq = host.get("frequency", {})
    if not freq.get("ghz") and not any(r.get("frequency_ghz") for r in rows):
        found.append(f"CPU frequency unknown ({freq.get('reason')}): per-GHz columns are empty.")
    if host.get("governor") not in (None, "performance"):
        found.append(f"CPU frequency governor is '{host['governor']}': set 'performance' for steadier numbers.")
    if str(host.get("smt_active")) == "1":
        found.append("SMT is on: two threads of one core share its execution units; compare thread counts with care.")
    if host.get("boost") == "on":
        found.append("Frequency boost is on: clock speed, and with it tokens/s, may vary with load and temperature.")
    if run.get("orchestrator", {}).get("git_dirty"):
        found.append("The orchestrator's git tree had uncommitted changes when this RUN started.")
    for row in rows:
        where = f"{row['cell_id']} ({row['engine']} {row['model']}/{row['format']} t{row['threads']})"
        if row["status"] != "ok":
            found.append(f"{where} ended {row['status']}: {row['reason']}")
        if row.get("emulated") is True:
            found.append(f"{where} ran under emulation (an IMAGE built for another architecture than this host's): "
                         "its tokens are that architecture's, its speed is not; never compare it with native speed.")
        if row.get("agreement") == "DISAGREE":
            found.append(f"{where} DISAGREES with {row['agreement_reference']}: {_fmt(row['agreement_tokens'])} of "
                         f"{_fmt(row['agreement_of'])} greedy tokens match.")
        if row.get("ppl_agreement") == "DISAGREE":
            found.append(f"{where}: perplexity {row['perplexity']:.5g} is {row['ppl_vs_reference']:+.2%} from "
                         f"{row['ppl_reference']}'s: F32 engines must agree within 0.5 %.")
        if row.get("token_ids_stable") is False:
            found.append(f"{where} generated different tokens in different repetitions.")
        if row.get("test_double"):
            found.append(f"{where} is a TEST DOUBLE: it measures no inference engine.")
        if row["status"] == "ok":
            found += [f"{where}: {text}" for text in certainty.warnings(row)]
            if isinstance(row.get("noise_flags"), str):
                found.append(f"{where}: noise guards tripped ({row['noise_flags']}): rerun it on a quieter host or "
                             "on isolated cores (placement.cpus).")
    for record in as_records(records):
        if record.placement_note:
            found.append(f"{record.cell_id}: {record.placement_note}")
        for field, why in record.outside.unmeasured.items():
            found.append(f"{record.cell_id}: {field} not measured: {why}")
    return found


def environment(run: dict) -> list[tuple[str, str]]:
    """(what, value) pairs describing the host, software, IMAGEs and models of the RUN."""
    host = run.get("host", {})
    cpu = host.get("cpu", {})
    freq = host.get("frequency", {})
    docker = host.get("docker", {})
    orch = run.get("orchestrator", {})
    pairs = [
        ("CPU", f"{cpu.get('brand')} (vendor {cpu.get('vendor')}, family {cpu.get('family')}, model {cpu.get('model')},"
                f" stepping {cpu.get('stepping')})"),
        ("CPUs", f"{cpu.get('logical_cpus')} logical, {cpu.get('physical_cores')} physical cores, "
                 f"{cpu.get('numa_nodes')} NUMA node(s); usable {cpu.get('usable_cpus')}"),
        ("caches", f"L2 {cpu.get('l2_cache_size')}, L3 {cpu.get('l3_cache_size')}"),
        ("host frequency (RUN start; each CELL's own is in the TABLE)",
         f"{freq['ghz']} GHz, source: {freq.get('source')}" if freq.get("ghz") else f"unknown: {freq.get('reason')}"),
        ("SMT active", _fmt(host.get("smt_active"))), ("governor", _fmt(host.get("governor"))),
        ("boost", _fmt(host.get("boost"))),
        ("memory", f"{host['memory_total_bytes'] / 2**30:.1f} GiB" if host.get("memory_total_bytes") else "-"),
        ("kernel", f"{host.get('kernel')} ({host.get('os')}, {host.get('machine')})"),
        ("Docker", f"{docker.get('version')} (API {docker.get('api_version')}, {docker.get('os')}, storage "
                   f"{docker.get('storage_driver')}, cgroup driver {docker.get('cgroup_driver')})"),
        ("cgroup", f"v{host.get('cgroup_version')}"), ("host fingerprint", _fmt(host.get("fingerprint"))),
        ("orchestrator", f"{orch.get('version')} at git {orch.get('git_commit')}"
                         + (" (uncommitted changes)" if orch.get("git_dirty") else "")),
    ]
    for engine, image in sorted(run.get("images", {}).items()):
        pairs.append((f"IMAGE {engine}", f"{image.get('tag')} id {image.get('id')}"
                      + (f"; base {image.get('base')} id {image.get('base_id')}" if image.get("base") else "")))
    for key, model in sorted(run.get("models", {}).items()):
        pairs.append((f"model {key}", f"sha256 {model.get('sha256')}, {model.get('size')} bytes"))
    return pairs


# Verdict columns shown as text beside the column they judge: (after column, heading, verdict key, text).
VERDICTS = (("status", "agree", "agreement", agree_text), ("perplexity", "PPL vs ref", "ppl_agreement", ppl_text))


def _table(rows: list[dict], extra: tuple[str, ...] = ()) -> str:
    """The sortable TABLE: the Markdown TABLE's columns, each verdict as its text coloured by verdict;
    ``extra`` columns (the merged page's machine) follow the greedy-token verdict."""
    names, heads, verdicts = ["cell_id"], ["cell"], {}
    for column in (c for c in SUMMARY_COLUMNS if not rows or c in rows[0]):
        names.append(column)
        heads.append(SUMMARY_COLUMNS[column])
        for after, head, key, text in VERDICTS:
            if after == column and (not rows or key in rows[0]):
                verdicts[len(names)] = (key, text)
                names.append(None)
                heads.append(head)
        if column == "status":
            names += extra
            heads += extra
    out = ['<table id="cells" class="sortable"><thead><tr>']
    out += [f'<th data-col="{i}">{_e(h)}</th>' for i, h in enumerate(heads)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        values = [row.get(c) if c else None for c in names]
        disagree = row.get("agreement") == "DISAGREE" or row.get("ppl_agreement") == "DISAGREE"
        klass = "disagree" if disagree else ("failed" if row["status"] != "ok" else "")
        if row.get("test_double"):
            values[1] = f"{row['engine']} (TEST DOUBLE)"
        cells = []
        for index, value in enumerate(values):
            kind = type(value)
            if index in verdicts:
                key, text = verdicts[index]
                verdict = row.get(key)
                verdict = verdict if isinstance(verdict, str) else "none"
                cells.append(f'<td class="agree-{_e(verdict)}">{_e(text(_Row(row)))}</td>')
            elif kind is float:  # the common case, kept cheap: 10,000 rows x 30 columns
                cells.append(f'<td data-v="{value!r}">{value:.4g}</td>' if value == value else '<td data-v="">-</td>')
            elif kind is int:
                cells.append(f'<td data-v="{value}">{value}</td>')
            else:
                cells.append(f'<td data-v="">{_e(_fmt(value))}</td>')
        out.append(f'<tr class="{klass}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _rows(table: pd.DataFrame) -> list[dict]:
    """The TABLE's rows as dicts of plain Python values (NaN stays NaN; shown as '-')."""
    if table.empty:
        return []
    columns = list(table.columns)
    return [dict(zip(columns, values)) for values in zip(*(table[c].tolist() for c in columns))]


class _Row:
    """Attribute access to a TABLE row for report.agree_text."""

    def __init__(self, row: dict):
        self.__dict__.update(row)


def page(run: dict, records: list[dict], table: pd.DataFrame, broken: list | None = None,
         summary: standings.Summary | None = None) -> str:
    """The whole report.html of a RUN as text; ``broken`` records (results.Broken) are named in the warnings; the
    ``summary`` (report/summaries.py) heads the page."""
    rows = _rows(table)
    figures = (ordered(charts.speed_figures(rows), tradeoff.memory_figure(rows),
                       tradeoff.speed_quality_figures(summary) if summary else [])
               + charts.latency_figure(rows, records) + charts.scaling_figures(rows, parameters(run))
               + charts.agreement_figure(rows) + charts.perplexity_figure(rows))
    ok = sum(1 for r in rows if r["status"] == "ok")
    host = run.get("host", {})
    shown = [r for r in rows if r["status"] == "ok"]
    capped = (f"<p class='note'>Charts show the first {charts.MAX_CELLS} of {len(shown)} ok CELLs (plan order); "
              "the TABLE has every CELL.</p>") if len(shown) > charts.MAX_CELLS else ""
    warning_list = [f"{b.cell_id}: its record cannot be read ({b.reason}); it is left out of the TABLE and charts."
                    for b in broken or []] + warnings(run, records, rows)
    env = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in environment(run))
    what = (f"MATRIX <code>{_e(run.get('matrix', {}).get('path'))}</code>, started {_e(run.get('started_at'))},\n"
            f"finished {_e(run.get('finished_at'))} ({_e(run.get('status'))}); {len(rows)} CELLs, {ok} ok, "
            f"{len(rows) - ok} not ok;\non {_e(host.get('cpu', {}).get('brand'))} (host fingerprint "
            f"{_e(host.get('fingerprint'))}).")
    return document(f"RUN {run.get('run_id')}", what, figures, warning_list, f'<table class="env">{env}</table>',
                    _table(rows), capped,
                    f"Written by orchestrate {_e(run.get('orchestrator', {}).get('version'))} from the RUN's stored "
                    "records;", summary_html=summaryhtml.section(summary) if summary else "")


def ordered(speed: list, memory: list, quality: list) -> list:
    """Decode speed with peak memory beside it, then speed against quality, then prefill and TTFT."""
    return speed[:1] + memory + quality + speed[1:]


def document(title: str, what: str, figures: list, warning_list: list[str], environment_html: str, table_html: str,
             capped: str = "", written_by: str = "Written by orchestrate;", table_note: str = TABLE_NOTE,
             summary_html: str = "") -> str:
    """A whole self-contained page: heading, the summary (when given), charts, warnings, environment and the
    sortable TABLE (id "cells").

    ``what`` and the ``*_html`` arguments are HTML already escaped by the caller.
    """
    script, version = plotly_js()
    sections = "".join(
        f'<section class="figure"><h3>{_e(f.title)}</h3><p class="caption">{_e(f.caption)}</p>'
        f'<div class="chart" id="{f.id}"></div></section>' for f in figures)
    figures_json = _json_for_script([{"id": f.id, "data": f.data, "layout": f.layout} for f in figures])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}: orchestrate report</title>
<style>{STYLE}{summaryhtml.STYLE}</style>
</head><body>
<h1>{_e(title)}</h1>
<p class="what">{what}</p>
<nav>{'<a href="#summary-heading">summary</a> · ' if summary_html else ""}<a href="#charts">charts</a> ·
<a href="#warnings">warnings ({len(warning_list)})</a> · <a href="#environment">environment</a> ·
<a href="#table">TABLE</a></nav>
{'<h2 id="summary-heading">Summary</h2>' + summary_html if summary_html else ""}
<h2 id="charts">Charts</h2>{capped}
<div class="figures">{sections or "<p>No CELL finished ok: nothing to chart.</p>"}</div>
<h2 id="warnings">Warnings</h2>
{"<ul class='warnings'>" + "".join(f"<li>{_e(w)}</li>" for w in warning_list) + "</ul>" if warning_list
 else "<p>None.</p>"}
<h2 id="environment">Environment</h2>
{environment_html}
<h2 id="table">TABLE</h2>
<p class="note">{_e(table_note)}</p>
<div class="scroll">{table_html}</div>
<footer>{written_by}
charts by plotly.js {_e(version)} (MIT), embedded.</footer>
<script>{script}</script>
<script id="figures" type="application/json">{figures_json}</script>
<script>{SCRIPT}</script>
</body></html>
"""


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;margin-top:1.6em} h3{margin:.8em 0 .1em}
.caption,.note,.what{color:#555;font-size:.92em} code{background:#f3f3f3;padding:0 .25em}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(620px,1fr));gap:.5em 1.5em}
section.figure{min-width:0} .chart{width:100%;min-height:440px} .scroll{overflow-x:auto;max-height:80vh}
table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ddd;padding:.2em .45em;text-align:right}
table.env th,table.env td{text-align:left} table.env th{background:#f6f6f6;white-space:nowrap}
#cells th{background:#f0f0f0;cursor:pointer;position:sticky;top:0;white-space:nowrap}
#cells th.asc::after{content:" \\25B2"} #cells th.desc::after{content:" \\25BC"}
#cells td:nth-child(-n+8){text-align:left} tr.failed td{background:#fff4e0}
tr.disagree td, td.agree-DISAGREE{background:#fde0e0;color:#a00;font-weight:bold}
td.agree-ok{color:#187a18} td.agree-reference{color:#1f5fa8}
ul.warnings li{color:#8a4b00;margin:.2em 0} footer{margin-top:2em;color:#777;font-size:.85em}
"""

SCRIPT = """
(function () {
  var figures = JSON.parse(document.getElementById('figures').textContent);
  var done = figures.map(function (f) {
    return Plotly.newPlot(f.id, f.data, f.layout, {responsive: true, displaylogo: false});
  });
  Promise.all(done).then(function () { document.body.setAttribute('data-charts-rendered', String(done.length)); });
  var table = document.getElementById('cells');
  table.querySelectorAll('th').forEach(function (th) {
    th.addEventListener('click', function () {
      var col = Number(th.dataset.col), asc = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col], xv = x.dataset.v, yv = y.dataset.v, r;
        if (xv && yv) { r = Number(xv) - Number(yv); }
        else if (xv || yv) { r = xv ? -1 : 1; return r; }
        else { r = x.textContent.localeCompare(y.textContent); }
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""
