"""report.html from a RUN's records: charts, warnings, environment and the TABLE (no browser here)."""

import json
import re

import pytest

from orchestrator.merge import frames
from orchestrator.report import charts, htmlreport, writer
from tests.unit.runfolder import made_up_records, run_document, write_run

FIGURES = ["chart-decode", "chart-memory", "chart-prefill", "chart-ttft", "chart-itl", "chart-threads", "chart-size-speed",
           "chart-size-memory", "chart-agreement"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run_dir = write_run(tmp_path_factory.mktemp("run"))
    paths = writer.write(run_dir)
    return run_dir, paths["report.html"].read_text()


def figures(page: str) -> list[dict]:
    found = re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def without_plotly(page: str) -> str:
    return re.sub(r"<script>/\*\*\s*\* plotly\.js.*?</script>", "", page, flags=re.S)


def test_report_write_makes_report_html_next_to_the_tables(written):
    run_dir, page = written
    assert (run_dir / "report.html").is_file() and (run_dir / "tables" / "cells.md").is_file()
    assert page.startswith("<!DOCTYPE html>") and "RUN 20260101T000000Z-abcdef" in page
    assert "Test CPU 9000" in page and "2026-01-01T00:00:00+00:00" in page


def test_page_is_self_contained(written):
    _, page = written
    assert "Plotly.newPlot" in page and "plotly.js v" in page  # the library is inlined
    own = without_plotly(page)
    assert len(own) < len(page) / 2
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", own), "the page must not load anything"


def test_every_chart_of_a_run_with_threads_and_models(written):
    _, page = written
    shown = figures(page)
    assert [f["id"] for f in shown] == FIGURES
    assert all(f["data"] and any(trace.get("y") or trace.get("median") for trace in f["data"]) for f in shown)
    assert page.count('<div class="chart"') == len(FIGURES)


def test_chart_values_are_the_table_values(written):
    _, page = written
    table = frames.cells(made_up_records(), run_document([])["host"]["frequency"])
    decode = next(f for f in figures(page) if f["id"] == "chart-decode")
    one_thread = next(t for t in decode["data"] if t["name"] == "1 thread")
    expected = table[(table["threads"] == 1) & (table["status"] == "ok")]["gen_tps_median"].tolist()
    assert one_thread["y"] == pytest.approx(expected)
    assert all(e >= 0 for e in one_thread["error_y"]["array"] + one_thread["error_y"]["arrayminus"])


def test_disagreement_is_flagged_in_colour(written):
    _, page = written
    agreement = next(f for f in figures(page) if f["id"] == "chart-agreement")
    red = [t for t in agreement["data"] if t["name"] == "DISAGREE"]
    assert red and red[0]["marker"]["color"] == charts.VERDICT_COLOURS["DISAGREE"] and len(red[0]["x"]) == 1
    assert page.count('<tr class="disagree">') == 1 and "2/5 DISAGREE" in page


def test_table_has_every_cell_and_warnings_say_why(written):
    _, page = written
    body = page[page.index('<table id="cells"'):]
    assert body[:body.index("</table>")].count("<tr") == len(made_up_records()) + 1  # + the heading
    warnings = page[page.index('id="warnings"'):page.index('id="environment"')]
    assert "ended oom" in warnings and "DISAGREES" in warnings
    assert "governor is &#x27;powersave&#x27;" in warnings and "SMT is on" in warnings


def test_environment_names_images_and_model_hashes(written):
    _, page = written
    env = page[page.index('id="environment"'):page.index('id="table"')]
    assert "sha256:" + "1" * 64 in env and "3" * 64 in env and "20.10.24" in env
    assert "2.5 GHz, source: test frequency" in env and "6.1.0-test" in env


def test_charts_are_capped_and_say_so(monkeypatch):
    monkeypatch.setattr(charts, "MAX_CELLS", 3)
    records = made_up_records()
    run = run_document(records)
    run["host"]["frequency"] = {"ghz": None, "source": None, "reason": "no cpufreq"}
    page = htmlreport.page(run, records, frames.cells(records, run["host"]["frequency"]))
    assert "Charts show the first 3 of 12 ok CELLs" in page
    decode = next(f for f in figures(page) if f["id"] == "chart-decode")
    assert sum(len(t["x"]) for t in decode["data"]) == 3
    assert "CPU frequency unknown (no cpufreq): per-GHz columns are empty" in page


def test_one_thread_one_model_has_no_scaling_charts():
    records = [r for r in made_up_records() if r["cell"]["threads"] == 1 and r["cell"]["model"] == "tinystories-15m"]
    table = frames.cells(records, {"ghz": 2.0, "source": "t"})
    ids = [f["id"] for f in figures(htmlreport.page(run_document(records), records, table))]
    assert "chart-threads" not in ids and "chart-size-speed" not in ids and "chart-decode" in ids


def test_json_in_the_page_cannot_end_its_script():
    assert "</script>" not in htmlreport._json_for_script({"x": "</script><script>alert(1)</script>"})
    assert charts._num(float("nan")) is None and htmlreport._json_for_script([charts._num(1)]) == "[1.0]"
