"""Every hostile-file case (tests/unit/hostile_files.py) against this tree: the stated exit code and reason,
never a traceback, nothing outside the inputs touched, no raw escape sequence printed."""

import re

import pytest

from tests.unit import hostile_files
from tests.unit.hostile_files import CASES, harm, run_in_process


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_file(case, tmp_path):
    if case.env:  # a case about the process's environment (a locale) runs in a process of its own
        found = hostile_files.run_in_subprocess(case, tmp_path, hostile_files.ROOT)
        assert (found.exit_code, found.traceback, found.harm, found.raw_escape) == (case.exit_code, False, None, False)
        assert re.search(case.says, found.message), found
        return
    argv = case.build(tmp_path)
    code, text = run_in_process(argv, tmp_path)
    assert code == case.exit_code, text[-2000:]
    assert re.search(case.says, text), text[-2000:]
    assert harm(tmp_path) is None
    assert "\x1b" not in text and "\x07" not in text  # escape sequences are shown, never sent
    assert len(text) < 200_000  # what is echoed is capped


def test_there_are_at_least_sixty_cases_across_the_four_kinds():
    kinds = {c.id[0] for c in CASES}
    assert len(CASES) >= 60 and {"B", "G", "F", "S"} <= kinds
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_harm_check_sees_harm(tmp_path):
    hostile_files.victim(tmp_path).write_text("")
    (hostile_files.outside(tmp_path) / "x").write_text("x")
    assert "victim.txt changed" in harm(tmp_path) and "outside/" in harm(tmp_path)


def test_formulas_from_a_shard_are_quoted_in_every_csv(tmp_path):
    argv = hostile_files.merge_of(hostile_files.two_shards(record_b=hostile_files._failed("=HYPERLINK(\"x\")")))(
        tmp_path)
    code, _ = run_in_process(argv, tmp_path)
    assert code == 0
    text = (tmp_path / "merged" / "tables" / "cells.csv").read_text()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and ',"=HYPERLINK' not in text


def test_escape_sequences_are_shown_not_sent_by_every_kind_of_output(tmp_path, capsys):
    from orchestrator.files import terminal

    assert terminal.escape(hostile_files.ESC) == "\\x1b]0;pwned\\x07\\x1b[2J"
    assert terminal.escape("tab\tnew\nline é ü \u202e") == "tab\tnew\nline é ü \\u202e"
    argv = hostile_files.report_of(lambda t, r: hostile_files._rewrite_record(
        r, hostile_files._failed(f"boom {hostile_files.ESC}")))(tmp_path)
    code, text = run_in_process(argv, tmp_path)
    assert code == 0 and "boom \\x1b]0;pwned" in text and "\x1b" not in text
