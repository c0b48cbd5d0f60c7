"""Judging what a CELL's container left behind."""

import json

import pytest

from orchestrator.files import writing
from orchestrator.results.judge import CellStatus, consistency_problems, judge
from tests.unit.records import per_thread, record


def job(threads=1, reps=3, gen=5, prompt_tokens=4):
    return {"cell_id": "c-000000000001", "threads": threads, "repetitions": reps,
            "workload": {"name": "w", "prompt": "x", "prompt_tokens": prompt_tokens, "gen_tokens": gen}}


def write_result(tmp_path, result):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    return path


def test_valid_result_is_ok(tmp_path):
    status, reason, result = judge(job(), 0, False, False, "", write_result(tmp_path, record()["result"]))
    assert status is CellStatus.OK and reason is None and result["cell_id"] == "c-000000000001"


@pytest.mark.parametrize("exit_code,oom,timed_out,expected", [
    (137, True, False, CellStatus.OOM),
    (137, False, True, CellStatus.TIMEOUT),
    (3, False, False, CellStatus.CRASHED),
])
def test_exit_states(tmp_path, exit_code, oom, timed_out, expected):
    status, reason, _ = judge(job(), exit_code, oom, timed_out, "line1\nboom", tmp_path / "none.json")
    assert status is expected and reason


def test_crash_reason_carries_the_log_tail(tmp_path):
    _, reason, _ = judge(job(), 3, False, False, "a\nb\nfatal: no model", tmp_path / "none.json")
    assert "status 3" in reason and "fatal: no model" in reason


def test_missing_and_broken_results_are_invalid(tmp_path):
    assert judge(job(), 0, False, False, "", tmp_path / "none.json")[0] is CellStatus.INVALID
    (tmp_path / "bad.json").write_text("{not json")
    status, reason, _ = judge(job(), 0, False, False, "", tmp_path / "bad.json")
    assert status is CellStatus.INVALID and "not readable JSON" in reason


def test_schema_violation_is_invalid_with_the_message(tmp_path):
    result = record()["result"]
    del result["repetitions"][0]["ttft_s"]
    status, reason, _ = judge(job(), 0, False, False, "", write_result(tmp_path, result))
    assert status is CellStatus.INVALID and "'ttft_s' is a required property" in reason


def test_more_threads_than_asked_is_caught(tmp_path):
    result = record(threads=2)["result"]
    result["threads"]["per_thread"] = per_thread(busy=3, idle=1)  # the engine says 2, three threads worked
    status, reason, kept = judge(job(threads=2), 0, False, False, "", write_result(tmp_path, result))
    assert status is CellStatus.INVALID
    assert "ran with 3 threads" in reason and "asked for 2" in reason
    assert kept is not None  # schema-valid results are kept for inspection


def test_fewer_threads_than_asked_keeps_the_cell_ok(tmp_path):
    result = record(threads=2)["result"]
    result["threads"]["per_thread"] = per_thread(busy=1, idle=3)  # the engine says 2, one thread worked
    status, reason, _ = judge(job(threads=2), 0, False, False, "", write_result(tmp_path, result))
    assert status is CellStatus.OK and reason is None


def test_consistency_checks():
    result = record()["result"]
    assert consistency_problems(job(), result) == []
    assert consistency_problems(job(reps=4), result) == ["3 repetitions reported, 4 asked for"]
    assert "6 asked for" in consistency_problems(job(gen=6), result)[0]
    assert "prompt has 4 tokens, 8 asked for" in consistency_problems(job(prompt_tokens=8), result)[0]
    result["repetitions"][0]["inter_token_latencies_s"].pop()
    assert any("expected one fewer" in p for p in consistency_problems(job(), result))
    result["cell_id"] = "c-ffffffffffff"
    assert any("not c-000000000001" in p for p in consistency_problems(job(), result))


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "record.json"
    writing.write_json(target, {"a": 1})
    writing.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_atomic_write_keeps_the_old_file_when_serialising_fails(tmp_path):
    target = tmp_path / "record.json"
    writing.write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        writing.write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
