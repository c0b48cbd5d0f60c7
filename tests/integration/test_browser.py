"""report.html in a real browser: headless Chromium (Debian's package) with the network cut.

The page comes from `orchestrate report` on a RUN folder of made-up records
(tests/unit/runfolder.py). Asserted: no console error or page error, no request but the
file itself, every chart drawn by plotly.js with its data, one TABLE row per CELL, and the
summary shown first with the speed-against-quality and peak-memory charts drawn (for one RUN
and for a merge of two machines). Screenshots are kept as test artifacts under
``$ORCHESTRATE_TEST_ARTIFACTS`` (default results/test-artifacts/). Needs Chromium, not Docker.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.unit.runfolder import made_up_records, write_run

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = Path(os.environ.get("ORCHESTRATE_TEST_ARTIFACTS", ROOT / "results" / "test-artifacts"))
# decode, memory, speed x quality (two models), prefill, TTFT, ITL, thread scaling, size x speed, size x memory,
# agreement, perplexity
EXPECTED_CHARTS = 12
SUMMARY_CHARTS = {"chart-memory", "chart-speed-quality-tinystories-15m-ppl_vs_f32",
                  "chart-speed-quality-tinystories-42m-ppl_vs_f32"}


def chromium() -> str:
    """Debian's chromium (`make host-deps` installs it); no download of a browser of our own."""
    found = os.environ.get("ORCHESTRATE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    # No skip: without a browser this test must fail, not pass silently.
    assert found, "no chromium on PATH: run `make host-deps` (apt-get install chromium) or set ORCHESTRATE_CHROMIUM"
    return found


def render(page_file: Path, screenshot: str) -> dict:
    """Open ``page_file`` offline in Chromium: console problems, requests, charts, TABLE rows, and a sort."""
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                          else route.abort())  # belt and braces: nothing but the file may load
            page = context.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-charts-rendered]", timeout=60_000)
            charts = page.evaluate("""() => Array.from(document.querySelectorAll('div.chart')).map(d => ({
                id: d.id, traces: (d.data || []).length, svg: d.querySelectorAll('svg.main-svg').length,
                marks: d.querySelectorAll('.point, .bars path, .boxes path, .scatterlayer .js-line').length}))""")
            rows = page.evaluate("() => document.querySelectorAll('#cells tbody tr').length")
            summary = page.evaluate("""() => { const s = document.querySelector('section#summary');
                if (!s) return null;
                const box = s.getBoundingClientRect(), charts = document.getElementById('charts').getBoundingClientRect();
                return {tables: s.querySelectorAll('table.summary').length, height: box.height,
                        first: box.top < charts.top, text: s.innerText,
                        faster: s.querySelectorAll('td.faster').length, baseline: s.querySelectorAll('td.base').length}
            }""")
            if summary is not None:
                page.locator("section#summary").screenshot(path=str(ARTIFACTS / screenshot.replace(".png",
                                                                                                   "-summary.png")))
            first = page.evaluate("() => document.querySelector('#cells tbody tr td').textContent")
            page.click("#cells th:nth-child(1)")
            page.click("#cells th:nth-child(1)")  # descending: the largest value of the first column first
            after = page.evaluate("() => document.querySelector('#cells tbody tr td').textContent")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == [], problems
    assert requests == [page_file.as_uri()], requests
    assert all(c["traces"] > 0 and c["svg"] > 0 and c["marks"] > 0 for c in charts), json.dumps(charts)
    assert (ARTIFACTS / screenshot).stat().st_size > 10_000
    return {"charts": charts, "rows": rows, "first": first, "after": after, "summary": summary}


def check_summary(seen: dict, tables: int) -> None:
    """The summary is on the page, before the charts, with a table per group, claims in words and the baseline;
    the speed-against-quality and memory charts are drawn."""
    summary = seen["summary"]
    assert summary is not None and summary["first"] and summary["height"] > 100
    assert summary["tables"] == tables and summary["faster"] > 0 and summary["baseline"] > 0
    assert "Baseline:" in summary["text"] and "not ranked because" in summary["text"]
    drawn = {c["id"]: c for c in seen["charts"]}
    assert SUMMARY_CHARTS <= set(drawn), sorted(drawn)
    assert all(drawn[i]["marks"] > 0 for i in SUMMARY_CHARTS)


def orchestrate(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "orchestrator", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done


def test_report_renders_offline_in_chromium(tmp_path):
    run_dir = write_run(tmp_path, made_up_records(quality=True))
    orchestrate("report", run_dir)
    seen = render(run_dir / "report.html", "report.png")
    assert len(seen["charts"]) == EXPECTED_CHARTS
    assert seen["rows"] == len(made_up_records(quality=True))
    assert seen["first"] != seen["after"] and seen["after"] == max(r["cell_id"] for r in made_up_records())
    check_summary(seen, 5)  # 2 models x 2 thread counts, and the OOM CELL's workload


def test_merged_and_compared_pages_render_offline_in_chromium(tmp_path):

    first = write_run(tmp_path / "a", made_up_records(quality=True))
    slower = {}
    for run_id in ("20260101T000001Z-abcdef", "20260101T000002Z-abcdef"):  # decode twice as slow: "slower"
        slower[run_id] = []
        for rec in made_up_records(quality=True):
            rec["run_id"] = run_id
            for rep in (rec["result"] or {}).get("repetitions", []):
                if "decode_s" not in rep:  # a perplexity evaluation
                    continue
                rep["decode_s"] *= 2
                rep["inter_token_latencies_s"] = [v * 2 for v in rep["inter_token_latencies_s"]]
            slower[run_id].append(rec)
    elsewhere = write_run(tmp_path / "b", slower["20260101T000001Z-abcdef"], "20260101T000001Z-abcdef", "Other CPU 1")
    orchestrate("merge", first, elsewhere, "--out", tmp_path / "merged")  # two machines side by side
    merged = render(tmp_path / "merged" / "report.html", "merged-report.png")
    assert {c["id"] for c in merged["charts"]} >= {"chart-decode", "chart-prefill", "chart-ttft"}
    assert merged["rows"] == 2 * len(made_up_records(quality=True))
    check_summary(merged, 10)  # the 5 groups on each machine
    again = write_run(tmp_path / "c", slower["20260101T000002Z-abcdef"], "20260101T000002Z-abcdef")
    orchestrate("compare", first, again, "--out", tmp_path / "compared")  # the same machine, slower
    compared = render(tmp_path / "compared" / "compare.html", "compare.png")
    assert {c["id"] for c in compared["charts"]} >= {"chart-ratio-gen_tps", "chart-ratio-prompt_tps"}
    assert compared["rows"] > 0
