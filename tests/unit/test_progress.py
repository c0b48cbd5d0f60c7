"""What a person sees during a RUN: plain lines, the live view, and the --json summary."""

import io
import json

from rich.console import Console

from orchestrator.execute import progress
from orchestrator.matrix.matrixfile import Workload
from orchestrator.plan.planner import Cell
from tests.unit.records import record


def cell(cell_id="c-000000000001", threads=1):
    return Cell(cell_id, "llama.cpp", "{}", "tinystories-15m", "gguf-f32", threads,
                Workload(name="w", prompt="x", prompt_tokens=4, gen_tokens=5))


def test_headline_is_the_median_generation_rate_or_the_reason():
    assert progress.headline(record(decode=(0.04, 0.05, 0.08))) == "median generation 80.0 tok/s"
    assert progress.headline(record(status="oom", reason="killed at the limit")) == "killed at the limit"


def test_plain_lines_name_stage_cell_status_and_time_left():
    lines = []
    events = progress.events_for(lines.append)
    events.run_started("r1", 2, "/tmp/r1")
    events.stage("IMAGE llama.cpp")
    events("step 1/9 : FROM base")
    events.stage_done("orchestrate/llama.cpp:abc, built")
    events.cell_started(1, 2, cell(), "1")
    events.cell_finished(1, 2, cell(), record(decode=(0.04, 0.05, 0.08)), 10.0)
    events.cell_finished(2, 2, cell("c-000000000002"), record(status="timeout", reason="ran past its timeout"), 30.0)
    assert lines[0] == "RUN r1: 2 cells -> /tmp/r1"
    assert lines[1] == "IMAGE llama.cpp ..." and lines[2] == "step 1/9 : FROM base"
    assert lines[3].startswith("IMAGE llama.cpp: done in ") and lines[3].endswith("(orchestrate/llama.cpp:abc, built)")
    assert lines[4] == "[1/2] c-000000000001 llama.cpp tinystories-15m/gguf-f32 t1 w on CPUs 1 ..."
    assert lines[5].startswith("    ok in 10.0s: median generation 80.0 tok/s (elapsed ")
    assert lines[5].endswith("about 0:10 left)")  # one CELL left at 10 s a CELL
    assert lines[6].startswith("    timeout in 30.0s: ran past its timeout")


def test_events_for_keeps_an_events_object():
    events = progress.Events(print)
    assert progress.events_for(events) is events


def test_live_view_draws_progress_and_finished_cells():
    out = io.StringIO()
    view = progress.LiveView(Console(file=out, force_terminal=True, width=160, color_system=None))
    view.run_started("r1", 2, "/tmp/r1")
    view.stage("model tinystories-15m (gguf-f32)")
    view("making tinystories-15m")
    view.stage_done()
    view.cell_started(1, 2, cell(), "1")
    view.cell_finished(1, 2, cell(), record(decode=(0.04, 0.05, 0.08)), 2.0)
    view.close()
    text = out.getvalue()
    assert "RUN r1" in text and "done model tinystories-15m (gguf-f32)" in text
    assert "ok [1/2] llama.cpp tinystories-15m/gguf-f32 t1 w in 2.0s: median generation 80.0 tok/s" in text
    assert "CELLs" in text and "1/2" in text and "about 0:02 left" in text


def test_live_view_counts_batches_when_the_run_has_rounds():
    out = io.StringIO()
    view = progress.LiveView(Console(file=out, force_terminal=True, width=160, color_system=None))
    view.run_started("r1", 2, "/tmp/r1")  # 2 CELLs in 3 rounds: the runner counts 6 batches
    for number in range(1, 4):
        view.cell_started(number, 6, cell(), "1")
        view.cell_finished(number, 6, cell(), record(decode=(0.04, 0.05, 0.08)), 2.0)
    view.close()
    text = out.getvalue()
    assert "batches" in text and "3/6" in text and "3/2" not in text


def test_json_summary(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "cells.md").write_text("x")
    run = {"run_id": "r1", "status": "finished", "started_at": "a", "finished_at": "b"}
    done = progress.summary(run, tmp_path, [record(), record("c-000000000002", status="oom", reason="killed")])
    json.dumps(done)
    assert done["counts"] == {"ok": 1, "oom": 1} and done["report_html"] == str(tmp_path / "report.html")
    assert done["cells"][0]["gen_tps_median"] == 80.0 and done["cells"][1]["reason"] == "killed"
    assert done["tables"] == {"cells.md": str(tmp_path / "tables" / "cells.md")}
