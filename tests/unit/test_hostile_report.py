"""`orchestrate report` on damaged RUN folders (issue 8, classes 3 and 8): the others reported, the broken named, exit 5."""

import pytest

from orchestrator.results.recordfiles import read_run
from tests.unit.hostile_cases import IDS, REPORT_CASES, report_outcome, write_run


@pytest.mark.parametrize("case", REPORT_CASES, ids=[c.name for c in REPORT_CASES])
def test_each_damaged_run_folder_ends_with_exit_5_and_names_what_is_broken(case, tmp_path):
    code, stdout, stderr = report_outcome(case, tmp_path)
    assert "Traceback" not in stderr
    assert code == case.exit_code == 5, stderr
    assert case.words in stderr, stderr
    if case.name.startswith("record-"):
        assert IDS[1] in stderr  # the broken record is named
        assert stdout.count("\n| llama.cpp ") == 2  # the two readable CELLs are rows of the TABLE


def test_read_run_lists_broken_records_and_returns_the_rest(tmp_path):
    run_dir = write_run(tmp_path)
    (run_dir / "cells" / IDS[0] / "record.json").write_text("{")
    broken = []
    run, records = read_run(run_dir, broken)
    assert [r["cell_id"] for r in records] == IDS[1:]
    assert [b.cell_id for b in broken] == [IDS[0]] and "not strict JSON" in broken[0].reason


def test_without_a_list_a_broken_record_still_stops_read_run(tmp_path):
    run_dir = write_run(tmp_path)
    (run_dir / "cells" / IDS[0] / "record.json").write_text("{")
    with pytest.raises(Exception, match="not strict JSON"):
        read_run(run_dir)


def test_a_cell_that_never_ran_is_not_broken(tmp_path):
    run_dir = write_run(tmp_path)
    (run_dir / "cells" / IDS[2] / "record.json").unlink()
    broken = []
    _, records = read_run(run_dir, broken)
    assert len(records) == 2 and broken == []
