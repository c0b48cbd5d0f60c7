"""Hostile RESULT files and runner output (issue 8, classes 1, 3, 4, 7): a status with a short reason, always."""

import json
import os
from pathlib import Path

import pytest

from orchestrator.execute import cellrun
from orchestrator.files import reading, writing
from orchestrator.host.dockerapi import Exit
from orchestrator.results.judge import MAX_REASON_CHARS, judge, plausibility_problems, quote_log
from tests.unit.hostile_cases import JOB, RESULT_CASES, result_outcome, valid_result
from tests.unit.test_execute import INFO, good_result, settings


@pytest.mark.parametrize("case", RESULT_CASES, ids=[c.name for c in RESULT_CASES])
def test_each_hostile_result_ends_as_a_status_with_a_short_reason(case, tmp_path):
    if case.root_only and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    status, reason = result_outcome(case, tmp_path)
    assert status == case.status, reason
    assert case.words in (reason or ""), reason
    assert reason is None or len(reason) <= MAX_REASON_CHARS + 40  # + the "[N more characters]" note


def test_a_symlinked_output_folder_is_not_followed(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "result.json").write_text(json.dumps(valid_result()))
    (tmp_path / "out").symlink_to(real)
    status, reason, result = judge(JOB, 0, False, False, "", tmp_path / "out" / "result.json")
    assert status.value == "invalid" and "symbolic link" in reason and result is None


def test_plausibility_tolerances_accept_what_real_runners_write():
    result = valid_result()
    rep = result["repetitions"][0]
    rep["inter_token_latencies_s"] = [0.1, 0.2, 0.3, 0.4]
    rep["decode_s"] = 0.1 + 0.2 + 0.3 + 0.4  # summed left to right, as every runner does: not exactly fsum
    rep["ttft_s"] = rep["prefill_s"]  # the test double reports ttft == prefill
    assert plausibility_problems(result) == []


def test_strict_json_only_is_written(tmp_path):
    target = tmp_path / "record.json"
    writing.write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        writing.write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_log_tail_is_bounded():
    tail = quote_log("\n".join(["x" * 10_000_000] + [f"line {i}" for i in range(100)] + ["y" * 1000]))
    assert len(tail.splitlines()) == 20 and len(tail) < 20 * 400 and tail.endswith("[700 more characters]")


class HostileDocker:
    """A container that leaves a symlink for result.json and prints a 10 MB line, then exits 0."""

    def run(self, spec, timeout_s):
        out = Path(next(m.host for m in spec.mounts if m.container == "/out"))
        (out / "result.json").symlink_to("/etc/passwd")
        return Exit(0, False, False, None, None, "z" * 10_000_000 + "\nlast line\n")


def test_a_hostile_cell_is_recorded_and_its_full_log_kept_only_in_runner_log(tmp_path):
    done = cellrun.run_cell(HostileDocker(), INFO, settings(tmp_path), tmp_path / "cell")
    assert done["status"] == "invalid" and "symbolic link" in done["reason"]
    assert "root:" not in json.dumps(done)  # nothing of /etc/passwd reached the record
    assert len(done["log_tail"]) < 1000 and done["log_tail"].endswith("last line")
    assert (tmp_path / "cell" / "runner.log").stat().st_size > 10_000_000


def test_a_good_cell_still_ends_ok(tmp_path):
    class Good:
        def run(self, spec, timeout_s):
            out = Path(next(m.host for m in spec.mounts if m.container == "/out"))
            job = json.loads((Path(next(m.host for m in spec.mounts if m.container == "/job")) / "job.json")
                             .read_text())
            (out / "result.json").write_text(json.dumps(good_result(job["cell_id"], job["threads"])))
            return Exit(0, False, False, None, None, "fine\n")

    done = cellrun.run_cell(Good(), INFO, settings(tmp_path), tmp_path / "cell")
    assert done["status"] == "ok", done["reason"]


def test_refused_files_are_never_opened_for_reading_past_the_limit(tmp_path):
    big = tmp_path / "result.json"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(reading.Refused, match="more than the limit of 1024 bytes"):
        reading.read_regular(big, 1024, contained=True)
