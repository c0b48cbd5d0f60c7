"""`orchestrate run --resume`: a RUN killed with kill -9 half way is finished in its own folder.

Real Docker, the testengine test double, a stand-in model store (fixtures of test_faults).
"""

import json

from orchestrator.execute import ownership
from orchestrator.results.recordfiles import read_run
from tests.integration.test_faults import assert_whole, cli, fake_env, start_run, testengine, wait_for  # noqa: F401

MATRIX = """\
version: 1
engines:
  - name: testengine
  - name: testengine
    options: {behaviour: ok}
models:
  - id: tinystories-15m
    formats: [gguf-q8_0, gguf-f32]
threads: [1]
workloads:
  - {name: w, prompt: "Once upon a time", gen_tokens: 4}
repetitions: 3
memory_limit: 256m
timeout_s: 120
"""


def _finished_cells(results):
    for run_json in results.glob("*/run.json"):
        run = json.loads(run_json.read_text())
        done = [c for c in run["plan_order"] if (run_json.parent / "cells" / c / "record.json").is_file()]
        if done:
            return run_json.parent, done
    return None


def test_kill_9_half_way_then_resume_runs_only_the_unfinished_cells(tmp_path, fake_env):  # noqa: F811 (the fixture)
    results = tmp_path / "results"
    process = start_run(tmp_path, fake_env, MATRIX, results)
    try:
        run_dir, _ = wait_for(lambda: _finished_cells(results), timeout=300, what="the first finished CELL")
    finally:
        process.kill()  # SIGKILL half way: no handler runs
        process.communicate(timeout=30)
    assert not ownership.owner_alive(run_dir)
    before = {p.parent.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*/record.json")
              if json.loads(p.read_text())["status"] == "ok"}
    plan_order = json.loads((run_dir / "run.json").read_text())["plan_order"]
    assert before and len(before) < len(plan_order), "the kill should land half way"

    done = cli("run", "--resume", str(run_dir), "-q", env=fake_env)
    assert done.returncode == 0, done.stderr
    assert_whole(run_dir)
    run, records = read_run(run_dir)
    assert run["status"] == "finished" and sorted(r["cell_id"] for r in records) == sorted(plan_order)
    assert all(r["status"] == "ok" and r["sampling"]["complete"] for r in records)
    after = {cid: (run_dir / "cells" / cid / "record.json").stat().st_mtime_ns for cid in before}
    assert after == before  # the finished CELLs were not run (or rewritten) again
    sessions = run["sessions"]
    assert [s["session"] for s in sessions] == [1, 2] and sessions[1]["resumed"]
    second = {b["cell_id"] for b in sessions[1]["batches"]}
    assert second and not second & set(before)
    assert second | {b["cell_id"] for b in sessions[0]["batches"]} == set(plan_order)
    table = (run_dir / "tables" / "cells.md").read_text()
    assert table.count("| ok ") == len(plan_order)
