"""Exit statuses in plain words, and a crash by signal judged as such."""

import json

from orchestrator.results.judge import CellStatus, judge
from orchestrator.results.signals import describe_exit, signal_of


def test_sigill_says_the_machine_code_does_not_run_on_this_cpu():
    text = describe_exit(132)
    assert text.startswith("killed by SIGILL (illegal instruction")
    assert "does not run on this CPU" in text and "portable" in text


def test_each_common_signal_has_its_own_words():
    assert "segmentation fault" in describe_exit(139)
    assert "bus error" in describe_exit(135) and "models verify" in describe_exit(135)
    assert "aborted" in describe_exit(134)
    assert "not by the OOM killer" in describe_exit(137)
    assert "OOM killer" in describe_exit(137, oom_killed=True) and "not by" not in describe_exit(137, oom_killed=True)


def test_plain_exit_statuses_are_not_signals():
    assert signal_of(1) is None and signal_of(128) is None and signal_of(None) is None
    assert signal_of(255) is None  # 128 + 127 is no signal
    assert describe_exit(2) == "the runner exited with status 2"


def test_judge_reports_a_runner_killed_by_sigill_in_plain_words(tmp_path):
    status, reason, result = judge({}, 132, False, False, "orchestrate-runner: cell c-0: loading\n",
                                   tmp_path / "result.json")
    assert status is CellStatus.CRASHED and result is None
    assert reason.startswith("killed by SIGILL (illegal instruction, exit status 132): this image's machine code")
    assert "loading" in reason  # the last log lines follow


def test_unavailable_is_a_record_status():
    schema = json.loads(open("schemas/record.schema.json").read())
    assert "unavailable" in schema["properties"]["status"]["enum"]
    assert CellStatus("unavailable") is CellStatus.UNAVAILABLE
