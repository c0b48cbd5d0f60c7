"""The machine's own speed beside every batch (issue 28): probes before and after each batch, kept with the CELL,
a RUN whose probes drift flagged, and compare naming a probe that moved instead of crediting the engine."""

from dataclasses import replace

import pytest

from orchestrator.compare import ratios
from orchestrator.execute import rounds, sampling
from orchestrator.execute.progress import Events
from orchestrator.host import probes
from orchestrator.merge import frames
from orchestrator.merge import sampling as sampling_columns
from orchestrator.results.reader import as_records
from tests.unit import runs
from tests.unit.test_rounds import CELLS, FREQ, Fake


def test_a_probe_measures_both_figures_on_one_pinned_cpu():
    found = probes.measure((0,), 1)
    assert found["reason"] is None, found["reason"]
    assert found["compute_gflops"] > 0 and found["memory_gbs"] > 0  # measured, whatever this machine's speed
    assert found["cpu"] == 0 and found["working_set_bytes"] == probes.MIN_WORKING_SET


def test_the_working_set_is_the_models_size_within_bounds():
    assert probes.working_set(None) == probes.MIN_WORKING_SET
    assert probes.working_set(80 * 2**20) == 80 * 2**20
    assert probes.working_set(540 * 2**20) == probes.MAX_WORKING_SET


def test_a_probe_that_cannot_run_is_null_with_the_reason(monkeypatch):
    monkeypatch.setattr(probes, "_SCRIPT", "raise SystemExit(3)")
    found = probes.measure((0,), None)
    assert found["compute_gflops"] is None and "exit 3" in found["reason"]


def test_figure_is_the_median_over_before_and_after_of_every_batch_and_drift_the_spread():
    batches = [{"before": {"compute_gflops": 10.0}, "after": {"compute_gflops": 12.0}},
               {"before": {"compute_gflops": 11.0}, "after": None}, {}]
    assert probes.figure(batches, "compute_gflops") == 11.0
    assert probes.figure([{}], "compute_gflops") is None
    assert probes.drift([10.0, 12.0, None]) == pytest.approx(0.2)
    assert probes.drift([10.0]) is None


def test_rounds_probe_before_and_after_each_batch_and_the_record_keeps_them(tmp_path):
    seen = []

    def probe(cell):
        seen.append(cell.cell_id)
        return {"compute_gflops": 50.0 + len(seen), "memory_gbs": 10.0}

    finals = rounds.run_cells(CELLS[:1], sampling.Sampling(3, 3, None, 1, 7, False), tmp_path / "cells", 1, Fake(),
                              lambda c: (1,), FREQ, Events(lambda _: None), probe=probe)
    record = finals[CELLS[0].cell_id]
    assert seen == [CELLS[0].cell_id] * 2
    (batch,) = record["sampling"]["batches"]
    assert batch["probes"] == {"before": {"compute_gflops": 51.0, "memory_gbs": 10.0},
                               "after": {"compute_gflops": 52.0, "memory_gbs": 10.0}}
    row = frames.cells([record], FREQ).iloc[0]
    assert row["probe_compute_gflops"] == 51.5 and row["probe_memory_gbs"] == 10.0


def test_a_run_whose_probes_drift_is_flagged_and_a_steady_one_is_not():
    def with_probes(cell_id, compute):
        rec = runs.cell_record(cell_id)
        rec["sampling"] = {"complete": True, "stopped": "fixed repetitions", "repetition_batch": [1] * 5,
                           "batches": [{"batch": 1, "round": 1, "position": 1, "session": 1, "repetitions": 5,
                                        "noise": {}, "frequency": {},
                                        "probes": {"before": {"compute_gflops": compute, "memory_gbs": 10.0},
                                                   "after": {"compute_gflops": compute, "memory_gbs": 10.0}}}]}
        return rec

    steady = as_records([with_probes("c-000000000001", 50.0), with_probes("c-000000000002", 52.0)])
    assert sampling_columns.machine_drift(steady) == []
    moved = as_records([with_probes("c-000000000001", 50.0), with_probes("c-000000000002", 70.0)])
    (line,) = sampling_columns.machine_drift(moved)
    assert "compute probe ranged from 50 to 70 GFLOP/s" in line and "40% apart" in line


def test_compare_names_the_machines_probe_when_it_moved_with_the_cell():
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    b = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0], speed=1.5)])
    a_cell, b_cell = a.cells[ids[0]], b.cells[ids[0]]
    a = type(a)(a.info, {ids[0]: replace(a_cell, probe_compute=50.0, probe_memory=10.0)}, "a")
    b = type(b)(b.info, {ids[0]: replace(b_cell, probe_compute=75.0, probe_memory=10.1)}, "b")
    (found,) = ratios.compare(a, b)
    assert found.verdict == ratios.FASTER
    assert found.machine_moved == (("compute", 1.5),)
    assert found.verdict_text == "faster, and so was the machine: compute probe x1.50"
    steady = type(b)(b.info, {ids[0]: replace(b_cell, probe_compute=50.5, probe_memory=10.0)}, "b")
    (plain,) = ratios.compare(a, steady)
    assert plain.verdict_text == ratios.FASTER


def test_the_noise_guards_also_see_the_whole_machine():
    from orchestrator.host import noise

    def reading(at, cpu0_busy, cpu1_busy):
        return noise.Reading(at, {"cpu0": [cpu0_busy, 0, 0, 1000, 0, 0, 0, 0],
                                  "cpu1": [cpu1_busy, 0, 0, 1000, 0, 0, 0, 0]}, 0, None)

    # the CELL on CPU 1 used 1 s; CPU 0 (not the CELL's) was busy the whole second: another job on the machine
    busy = noise.assess(reading(0.0, 0, 0), reading(1.0, 100, 100), (1,), 1.0, ticks=100)
    assert busy["other_cpu_share"] == 0 and busy["machine_other_share"] == pytest.approx(0.5)
    assert busy["flags"] == ["machine-busy"]
    quiet = noise.assess(reading(0.0, 0, 0), reading(1.0, 5, 100), (1,), 1.0, ticks=100)
    assert quiet["flags"] == []
