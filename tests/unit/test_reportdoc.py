"""report.md, summary.md and report.html's summary, speed-quality and memory figures from a RUN's records (known
answers; the page is parsed here, tests/integration/test_browser.py draws it in Chromium)."""

import json
import re

import pytest

from orchestrator.merge import frames, machines
from orchestrator.report import document, mergereport, summaries, tradeoff, writer
from tests.unit import records
from tests.unit.runfolder import made_up_records, run_document, write_run
from tests.unit.test_standings import FREQ, R, made_up

SECTIONS = ["# Report of RUN 20260101T000000Z-abcdef", "## Executive summary", "## Method", "### Machine",
            "### Pinning and repetitions", "### Statistics", "### Normalisation", "## Results", "### By engine",
            "### By model size", "### By thread count", "## Conclusions", "## CELLs shown but not ranked"]


def figures(page: str) -> list[dict]:
    return json.loads(re.search(r'<script id="figures" type="application/json">(.*?)</script>', page, re.S).group(1))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run_dir = write_run(tmp_path_factory.mktemp("run"), made_up_records(quality=True))
    return run_dir, writer.write(run_dir)


def test_a_run_writes_summary_md_report_md_and_a_page_that_opens_with_the_summary(written):
    run_dir, paths = written
    assert paths["summary.md"] == run_dir / "tables" / "summary.md" and paths["report.md"] == run_dir / "report.md"
    page = paths["report.html"].read_text()
    assert '<section id="summary">' in page and page.index('id="summary"') < page.index('id="charts"')
    ids = [f["id"] for f in figures(page)]
    assert ids[:2] == ["chart-decode", "chart-memory"]  # memory beside speed
    assert {"chart-speed-quality-tinystories-15m-ppl_vs_f32", "chart-speed-quality-tinystories-42m-ppl_vs_f32"} <= set(ids)
    summary = (run_dir / "tables" / "summary.md").read_text()
    assert summary.startswith("## Summary of RUN 20260101T000000Z-abcdef")
    assert summary.count("### ") == 5  # 2 models x 2 thread counts, and the OOM CELL's own workload
    assert "disagrees with its reference" in summary and "oom: killed by the kernel's OOM killer" in summary


def test_the_report_document_has_every_section_in_order(written):
    run_dir, _ = written
    text = (run_dir / "report.md").read_text()
    positions = [text.index(heading + "\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert "host frequency at the start: 2.5 GHz (test frequency)" in text
    assert "- 2.5 GHz, host, for 12 CELL(s): test frequency" in text  # the rows' own frequency, and how many used it
    assert "Test CPU 9000" in text and "CPUs 1 (12 CELL(s))" in text


def test_executive_summary_front_and_conclusions_with_known_answers():
    found = made_up()
    table, reps = frames.tables(found, FREQ)
    summary = summaries.summarise(table, reps)
    text = writer.report_document(run_document(found), summary)
    assert ("**llama.cpp gguf-q8_0** decodes fastest of 5 ranked CELL(s), 200.0 tok/s, 2.00x faster [1.97, 2.03] than "
            "the baseline llama.cpp gguf-f32; perplexity +10.00% over F32") in text
    assert ("Not beaten on both decode rate and perplexity: llama.cpp gguf-q8_0 (200.0 tok/s, +10.00%); llama.cpp "
            "gguf-f32 (100.0 tok/s, +0.00%).") in text
    assert "decode faster than llama.cpp gguf-f32: llama.cpp gguf-q8_0 (2.00x faster [1.97, 2.03])" in text
    assert "decode slower than llama.cpp gguf-f32: candle safetensors (3.00x slower [2.96, 3.05])" in text
    assert "the same within noise as llama.cpp gguf-f32: onnxruntime onnx (same within noise [0.99, 1.02])" in text
    assert "Not ranked: 1 CELL(s): disagrees with its reference c-000000000001; 1 CELL(s): noise guards tripped" in text
    assert [s.row["cell_id"] for s in document.front_of(summary.groups[0])] == ["c-000000000002", "c-000000000001"]


def test_thread_scaling_is_the_same_statistic():
    found = [records.rated("c-000000000001", rates=R), records.rated("c-000000000002", rates=R, threads=2),
             records.rated("c-000000000003", "candle", "gguf-q8_0", R),
             records.rated("c-000000000004", "candle", "gguf-q8_0", tuple(1.8 * r for r in R), threads=2)]
    table, reps = frames.tables(found, FREQ)
    text = writer.report_document(run_document(found), summaries.summarise(table, reps))
    assert "| candle gguf-q8_0 tinystories-15m w | 1 -> 2 | 100.0 | 180.0 | 1.80x faster [1.77, 1.83] | 0.90 |" in text
    assert "| llama.cpp gguf-f32 tinystories-15m w | 1 -> 2 | 100.0 | 100.0 | same within noise [0.99, 1.02] | 0.50 |" \
        in text


def test_speed_quality_points_and_front_are_the_summary_figures():
    table, reps = frames.tables(made_up(), FREQ)
    (figure,) = tradeoff.speed_quality_figures(summaries.summarise(table, reps))
    points, front = figure.data
    assert figure.id == "chart-speed-quality-tinystories-15m-ppl_vs_f32"
    assert sorted(zip(points["x"], points["y"])) == [(0.0, 100.0), (pytest.approx(10.0), 200.0)]
    assert front["name"].startswith("front") and front["text"] == ["llama.cpp gguf-f32", "llama.cpp gguf-q8_0"]
    assert "5 ok CELL(s) of this model had no perplexity increase over F32 measured" in figure.caption


def test_memory_is_charted_per_cell_without_an_error_bar():
    found = made_up()
    for index, rec in enumerate(found):
        rec["outside"]["peak_memory_bytes"] = (index + 1) * 10 * 2**20 if rec["status"] == "ok" else None
    (figure,) = tradeoff.memory_figure(frames.cells(found, FREQ).to_dict("records"))
    (trace,) = figure.data  # the 7 ok generation CELLs (not the failed one, not the perplexity CELLs)
    assert trace["y"] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0] and "error_y" not in trace


def test_a_merge_of_two_machines_ranks_each_machine_and_writes_the_same_files(tmp_path):
    first = write_run(tmp_path / "a", made_up_records(quality=True))
    other = made_up_records(quality=True)
    for rec in other:
        rec["run_id"] = "20260101T000001Z-abcdef"
    second = write_run(tmp_path / "b", other, "20260101T000001Z-abcdef", "Other CPU 1")
    merged = machines.combine(machines.load([first, second]))
    written = mergereport.write(merged, tmp_path / "merged", "transformers")
    summary = (tmp_path / "merged" / "tables" / "summary.md").read_text()
    assert summary.count("### ") == 10  # 5 groups on each machine
    assert "### unknown-arch Other CPU 1: tinystories-15m, w, 1 thread" in summary
    assert "Baseline: **transformers** (chosen with --baseline)" in summary
    report = written["report.md"].read_text()
    assert report.startswith("# Report of 2 merged RUN(s) on 2 machine(s)") and "Other CPU 1" in report
    page = written["report.html"].read_text()
    assert '<section id="summary">' in page and "chart-memory" in page and "chart-speed-quality-" in page
