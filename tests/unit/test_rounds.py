"""Batches, rounds, top-ups and resume of the CELL loop, with a fake container runner (no Docker)."""

import json

import pytest

from orchestrator.execute import rounds, sampling
from orchestrator.execute.progress import Events
from orchestrator.matrix.matrixfile import Workload
from orchestrator.plan.planner import Cell
from orchestrator.results.recordfiles import write_record
from tests.unit.records import record

CELLS = tuple(Cell(f"c-{i:012x}", "llama.cpp", "{}", "tinystories-15m", "gguf-f32", 1, Workload("w", "x", 5))
              for i in range(1, 4))
FREQ = {"ghz": 2.5, "source": "test"}


class Fake:
    """Runs 'batches' by writing made-up records; ``decode(cell_id, call)`` gives each repetition's decode time."""

    def __init__(self, decode=lambda cid, n: 0.04, fail=(), stop_after=None):
        self.calls, self.decode, self.fail, self.stop_after = [], decode, set(fail), stop_after

    def __call__(self, cell, repetitions, folder):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            assert folder.is_dir()  # made before the batch runs; cut short: a folder, no record
            raise KeyboardInterrupt
        self.calls.append((cell.cell_id, repetitions))
        if cell.cell_id in self.fail:
            rec = record(cell.cell_id, status="crashed", reason="boom")
        else:
            rec = record(cell.cell_id, decode=tuple(self.decode(cell.cell_id, len(self.calls) * 10 + i)
                                                    for i in range(repetitions)))
        write_record(folder / "record.json", rec)
        return rec


def run(fake, tmp_path, policy, session=1, cleared=None):
    return rounds.run_cells(CELLS, policy, tmp_path / "cells", session, fake, lambda c: (1,), FREQ,
                            Events(lambda _: None), cleared_to=cleared)


def test_fixed_repetitions_over_two_rounds_run_each_cell_once_per_round_in_shuffled_order(tmp_path):
    fake = Fake()
    finals = run(fake, tmp_path, sampling.Sampling(3, 3, None, 2, 5, True))
    assert len(fake.calls) == 6 and sorted(c for c, _ in fake.calls[:3]) == sorted(c.cell_id for c in CELLS)
    assert [n for _, n in fake.calls] == [2, 2, 2, 1, 1, 1]
    assert [c for c, _ in fake.calls[:3]] == sampling.Sampling(3, 3, None, 2, 5, True).order(
        [c.cell_id for c in CELLS], 1)
    for final in finals.values():
        assert final["status"] == "ok" and final["cell"]["repetitions"] == 3
        assert final["sampling"]["complete"] and final["sampling"]["repetition_batch"] == [1, 1, 2]
        assert [b["round"] for b in final["sampling"]["batches"]] == [1, 2]
    positions = sorted(b["position"] for f in finals.values() for b in f["sampling"]["batches"])
    assert positions == [1, 2, 3, 4, 5, 6]
    on_disk = json.loads((tmp_path / "cells" / CELLS[0].cell_id / "record.json").read_text())
    assert on_disk["sampling"]["complete"]


def test_top_ups_run_until_the_cv_target_or_max(tmp_path):
    noisy = CELLS[0].cell_id

    def decode(cid, n):  # the noisy CELL alternates 0.03 / 0.05 s; the others are steady
        return (0.03 if n % 2 else 0.05) if cid == noisy else 0.04

    fake = Fake(decode)
    finals = run(fake, tmp_path, sampling.Sampling(4, 9, 0.02, 2, 1, True))
    assert finals[noisy]["cell"]["repetitions"] == 9 and finals[noisy]["sampling"]["stopped"] == "max reached"
    for cell in CELLS[1:]:
        assert finals[cell.cell_id]["cell"]["repetitions"] == 4
        assert finals[cell.cell_id]["sampling"]["stopped"] == "cv_target reached"
    top_ups = [b for b in finals[noisy]["sampling"]["batches"] if b["round"] > 2]
    assert [b["repetitions"] for b in top_ups] == [2, 2, 1]  # ceil(4 / 2), never beyond max 9


def test_a_run_cut_short_resumes_with_only_what_is_missing(tmp_path):
    policy = sampling.Sampling(2, 2, None, 2, 3, True)
    first = Fake(stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        run(first, tmp_path, policy)
    done_before = {cid for cid, _ in first.calls}
    second = Fake()
    finals = run(second, tmp_path, policy, session=2)
    assert len(first.calls) + len(second.calls) == 6  # no batch ran twice
    for final in finals.values():
        assert final["sampling"]["complete"] and final["cell"]["repetitions"] == 2
    sessions = {b["session"] for f in finals.values() for b in f["sampling"]["batches"]}
    assert sessions == {1, 2} and done_before
    positions = sorted(b["position"] for f in finals.values() for b in f["sampling"]["batches"])
    assert positions == [1, 2, 3, 4, 5, 6]

    third = Fake()
    run(third, tmp_path, policy, session=3)
    assert third.calls == []  # a finished RUN: nothing runs again


def test_a_cell_that_failed_runs_again_on_resume_and_the_others_do_not(tmp_path):
    policy = sampling.Sampling(2, 2, None, 1, 3, False)
    run(Fake(fail={CELLS[1].cell_id}), tmp_path, policy)
    cleared = []
    again = Fake()
    finals = run(again, tmp_path, policy, session=2, cleared=cleared)
    assert again.calls == [(CELLS[1].cell_id, 2)]
    assert cleared == [{"cell_id": CELLS[1].cell_id, "status": "crashed", "reason": "boom"}]
    assert all(f["status"] == "ok" for f in finals.values())


def test_a_resumed_run_continues_the_numbering_of_top_up_passes(tmp_path):
    noisy = lambda cid, n: 0.03 if (n // 10) % 2 else 0.05  # noqa: E731 - batch by batch: above any target
    policy = sampling.Sampling(2, 6, 0.001, 2, 3, True)
    with pytest.raises(KeyboardInterrupt):
        run(Fake(noisy, stop_after=8), tmp_path, policy)  # 6 batches in rounds 1-2, 2 in top-up 1 (round 3)
    finals = run(Fake(noisy), tmp_path, policy, session=2)
    for final in finals.values():
        found = [b["round"] for b in final["sampling"]["batches"]]
        assert found == sorted(set(found)) and final["cell"]["repetitions"] == 6  # no round used twice
    second = [b for f in finals.values() for b in f["sampling"]["batches"] if b["session"] == 2]
    assert second and min(b["round"] for b in second) >= 3
