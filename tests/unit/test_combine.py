"""Merging RUN folders from several shards and machines (made-up RUNs built from the schemas)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import schemas
from orchestrator.errors import UsageError
from orchestrator.files import writing
from orchestrator.merge import frames, machines
from orchestrator.report import mergereport
from tests.unit.records import record

ROOT = Path(__file__).resolve().parents[2]
EPYC = ("x86_64", "AMD EPYC 7763 64-Core Processor", 3.5)
NEOVERSE = ("aarch64", "Neoverse-N2", 3.0)
IDS = ["c-000000000001", "c-000000000002", "c-000000000003", "c-000000000004"]


def with_ids(rec, ids):
    for rep in rec["result"]["repetitions"]:
        rep["token_ids"] = list(ids)
        rep["generated_tokens"] = len(ids)
        rep["inter_token_latencies_s"] = [0.01] * (len(ids) - 1)
    rec["cell"]["workload"]["gen_tokens"] = len(ids)
    return rec


def cell_records(slow=1.0):
    """A llama.cpp F32 reference, a transformers F32 CELL, a quantized CELL and one that ran out of memory."""
    base = list(range(40))
    return [with_ids(record(IDS[0], decode=(0.04 * slow, 0.05 * slow, 0.06 * slow)), base),
            with_ids(record(IDS[1], fmt="safetensors", engine="transformers", threads=2,
                            decode=(0.2 * slow, 0.25 * slow, 0.3 * slow)), base),
            with_ids(record(IDS[2], fmt="gguf-q8_0", decode=(0.02 * slow, 0.025 * slow, 0.03 * slow)),
                     base[:20] + [7] * 20),
            record(IDS[3], status="oom", reason="killed by the kernel's OOM killer")]


def write_run(folder, run_id, machine, records, shard=None, labels=None):
    """A RUN folder as `orchestrate run` leaves it: run.json and cells/<id>/record.json, both schema-valid."""
    arch, brand, ghz = machine
    run = {"schema_version": 1, "run_id": run_id, "status": "finished", "started_at": "2026-01-01T00:00:00+00:00",
           "finished_at": "2026-01-01T00:01:00+00:00", "orchestrator": {"version": "0.1.0", "git_commit": None},
           "matrix": {"path": "matrix.yaml", "text": "", "expanded": [{"cell_id": c} for c in IDS]},
           "plan_order": [r["cell_id"] for r in records], "images": {}, "models": {},
           "host": {"fingerprint": f"fp-{arch}", "machine": arch, "kernel": "6.8",
                    "cpu": {"brand": brand, "logical_cpus": 4}, "frequency": {"ghz": ghz, "source": "test"},
                    "cgroup_version": 2, "docker": {"version": "28.0"}},
           "shard": shard, "ci": {"provider": "github-actions", "runner_name": f"runner-{arch}-{run_id[-1]}",
                                  **({"runner_labels": labels} if labels else {})}}
    assert schemas.problems("run", run) == []
    run_dir = folder / run_id
    writing.write_json(run_dir / "run.json", run)
    for rec in records:
        rec = {**rec, "run_id": run_id}
        assert schemas.problems("record", rec) == []
        writing.write_json(run_dir / "cells" / rec["cell_id"] / "record.json", rec)
    return run_dir


def orchestrate(*args):
    return subprocess.run([sys.executable, "-m", "orchestrator", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ})


NUMBERS = [c for c in frames.cells(cell_records(), {"ghz": 1.0, "source": "x"}).columns
           if c.endswith(("_median", "_p90", "_std", "_min", "_max", "_n")) or c in
           ("gen_tps_per_core", "gen_tps_per_ghz_per_core", "cycles_per_token", "frequency_ghz", "status")]


def test_two_shards_merge_to_the_numbers_of_their_union(tmp_path):
    records = cell_records()
    first = write_run(tmp_path, "20260101T000000Z-aaaaa1", EPYC, records[:2], {"index": 1, "count": 2, "cells": 2,
                                                                             "plan_cells": 4})
    second = write_run(tmp_path, "20260101T000000Z-aaaaa2", EPYC, records[2:], {"index": 2, "count": 2, "cells": 2,
                                                                              "plan_cells": 4})
    merged = machines.combine(machines.load([first, second]))
    union = frames.cells(records, {"ghz": EPYC[2], "source": "test"})
    assert list(merged.cells["cell_id"]) == IDS and list(merged.machines) == [f"{EPYC[0]} {EPYC[1]}"]
    pd.testing.assert_frame_equal(merged.cells[NUMBERS], union[NUMBERS], check_dtype=False)
    assert list(merged.cells["shard"]) == ["1/2", "1/2", "2/2", "2/2"]
    # The quantized CELL's F32 parent ran in the other shard: the merge still finds it.
    assert list(merged.cells["agreement"]) == list(union["agreement"]) == ["reference", "ok", "info", None]
    assert merged.cells.loc[2, "agreement_reference"] == IDS[0] and merged.cells.loc[2, "agreement_tokens"] == 20
    reps = frames.repetitions(records)
    assert len(merged.repetitions) == len(reps) == 9
    assert list(merged.repetitions["gen_tps"]) == pytest.approx(list(reps["gen_tps"]))
    assert merged.refused == {} and merged.missing == ()


def test_merge_command_writes_the_same_tables_as_a_run(tmp_path):
    records = cell_records()
    runs = tmp_path / "artifacts"
    write_run(runs / "bench-ubuntu-24.04-1of2", "20260101T000000Z-aaaaa1", EPYC, records[:2])
    write_run(runs / "bench-ubuntu-24.04-2of2", "20260101T000000Z-aaaaa2", EPYC, records[2:])
    done = orchestrate("merge", runs, "--out", tmp_path / "merged")
    assert done.returncode == 0, done.stderr
    tables = tmp_path / "merged" / "tables"
    assert {p.name for p in tables.iterdir()} == {f"{n}.{f}" for n in ("cells", "repetitions") for f in ("md", "csv",
                                                                                                       "json")} | {
        "summary.md"}
    rows = json.loads((tables / "cells.json").read_text())
    assert [r["cell_id"] for r in rows] == IDS and rows[3]["status"] == "oom" and rows[3]["gen_tps_median"] is None
    page = (tmp_path / "merged" / "report.html").read_text()  # the merged RUNs' page, as a RUN's report.html
    assert "REPORT: " in done.stdout and page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "20260101T000000Z-aaaaa1" in page and "20260101T000000Z-aaaaa2" in page and 'id="chart-decode"' in page
    assert page.count("<tr class=") == len(rows)  # one TABLE row per merged row
    assert "merged 2 RUN(s)" in done.stdout and "0 cell(s) refused" in done.stdout
    again = orchestrate("merge", runs, "--out", tmp_path / "merged")
    assert again.returncode == 2 and "not empty" in again.stderr  # a merged folder is never overwritten


def test_different_cpu_models_are_side_by_side_not_together(tmp_path):
    epyc = write_run(tmp_path, "20260101T000000Z-bbbbb1", EPYC, cell_records())
    arm = write_run(tmp_path, "20260101T000000Z-bbbbb2", NEOVERSE, cell_records(slow=2.0))
    merged = machines.combine(machines.load([arm, epyc]))
    x86, a64 = f"{EPYC[0]} {EPYC[1]}", f"{NEOVERSE[0]} {NEOVERSE[1]}"
    assert list(merged.machines) == sorted([x86, a64])
    assert list(zip(merged.cells["cell_id"], merged.cells["machine"])) == [(c, m) for c in IDS for m in sorted([x86, a64])]
    first = merged.cells[merged.cells["cell_id"] == IDS[0]].set_index("machine")
    assert first.loc[x86, "gen_tps_median"] == pytest.approx(39 / 0.05)
    assert first.loc[a64, "gen_tps_median"] == pytest.approx(39 / 0.10)
    # Each row is normalised by its own RUN's frequency.
    assert first.loc[x86, "gen_tps_per_ghz_per_core"] == pytest.approx(780 / 3.5)
    assert first.loc[a64, "gen_tps_per_ghz_per_core"] == pytest.approx(390 / 3.0)
    assert (first.loc[a64, "arch"], first.loc[a64, "cpu_model"]) == NEOVERSE[:2]
    # Agreement is computed within each machine: each has its own reference.
    refs = merged.cells[merged.cells["agreement"] == "reference"]
    assert sorted(refs["machine"]) == sorted([x86, a64])
    wide = machines.side_by_side(merged.cells, "gen_tps_median")
    assert list(wide.columns) == machines.CELL_COLUMNS + sorted([x86, a64])
    assert list(wide[x86]) == ["780", "156", "1560", "oom"] and list(wide[a64]) == ["390", "78", "780", "oom"]
    page = mergereport.markdown_page(merged)
    assert f"## {x86}" in page and f"## {a64}" in page and "machines side by side" in page
    assert "runner-aarch64-2" in page and "3.0 GHz" in page


def test_a_different_model_or_image_is_refused_with_the_reason(tmp_path):
    other = cell_records()
    other[0]["provenance"]["model"]["sha256"] = "1" * 64
    other[1]["provenance"]["image"]["tag"] = "orchestrate/transformers:other"
    epyc = write_run(tmp_path, "20260101T000000Z-ccccc1", EPYC, cell_records())
    arm = write_run(tmp_path, "20260101T000000Z-ccccc2", NEOVERSE, other)
    merged = machines.combine(machines.load([epyc, arm]))
    assert set(merged.refused) == {IDS[0], IDS[1]}
    assert "model sha256 differs" in merged.refused[IDS[0]] and "1" * 64 in merged.refused[IDS[0]]
    assert "IMAGE content (tag) differs" in merged.refused[IDS[1]] and "orchestrate/transformers:other" in \
        merged.refused[IDS[1]]
    assert IDS[0] not in set(merged.cells["cell_id"]) and len(merged.cells) == 4
    done = orchestrate("merge", epyc, arm, "--out", tmp_path / "out")
    assert done.returncode == 5 and f"refused {IDS[0]}: model sha256 differs" in done.stderr
    assert "Cells refused" in (tmp_path / "out" / "tables" / "cells.md").read_text()


def test_a_cell_run_twice_on_one_machine_is_refused(tmp_path):
    first = write_run(tmp_path, "20260101T000000Z-ddddd1", EPYC, cell_records()[:2])
    second = write_run(tmp_path, "20260101T000000Z-ddddd2", EPYC, cell_records()[1:])
    merged = machines.combine(machines.load([first, second]))
    assert list(merged.refused) == [IDS[1]] and "ran 2 times on x86_64" in merged.refused[IDS[1]]


def test_runner_label_sets_on_one_cpu_model_stay_two_machines(tmp_path):
    """Self-hosted runners labelled by machine (say one with SMT off): the labels the job asked for keep them apart."""
    smt_on, smt_off = ["self-hosted", "linux", "x64", "epyc-7763"], ["self-hosted", "linux", "x64", "epyc-7763-nosmt"]
    first = write_run(tmp_path, "20260101T000000Z-fffff1", EPYC, cell_records()[:2], labels=smt_on)
    second = write_run(tmp_path, "20260101T000000Z-fffff2", EPYC, cell_records()[:2], labels=smt_off)
    merged = machines.combine(machines.load([first, second]))
    assert merged.refused == {}
    on, off = f"x86_64 {EPYC[1]} [{', '.join(smt_on)}]", f"x86_64 {EPYC[1]} [{', '.join(smt_off)}]"
    assert set(merged.machines) == {on, off}
    assert [f["runner_labels"] for f in merged.machines[on]] == [smt_on]
    assert len(merged.cells) == 4 and set(merged.cells["machine"]) == set(merged.machines)
    assert f"[{', '.join(smt_off)}]" in mergereport.markdown_page(merged)
    # The same label set twice is one machine: a CELL that ran on both is refused, as before.
    third = write_run(tmp_path, "20260101T000000Z-fffff3", EPYC, cell_records()[1:2], labels=smt_on)
    assert list(machines.combine(machines.load([first, third])).refused) == [IDS[1]]


def test_missing_cells_and_unmeasured_cells_are_reported(tmp_path):
    records = cell_records()
    records[0]["outside"]["peak_memory_bytes"] = None
    run_dir = write_run(tmp_path, "20260101T000000Z-eeeee1", EPYC, records[:3])
    merged = machines.combine(machines.load([run_dir]))
    assert merged.missing == (IDS[3],)
    assert len(machines.unmeasured(merged.cells)) == 1 and "no peak memory" in machines.unmeasured(merged.cells)[0]
    assert math.isnan(merged.cells.loc[0, "peak_memory_mib_median"])
    done = orchestrate("merge", run_dir, "--out", tmp_path / "out", "--require-measured")
    assert done.returncode == 5 and "not measured" in done.stderr
    assert orchestrate("merge", run_dir, "--out", tmp_path / "out2").returncode == 0


def test_a_folder_without_runs_is_a_results_error(tmp_path):
    done = orchestrate("merge", tmp_path, "--out", tmp_path / "out")
    assert done.returncode == 5 and "no run.json" in done.stderr and "Traceback" not in done.stderr


def test_merge_and_plan_help_describe_the_new_options(capsys):
    from orchestrator import cli

    for command, needle in (("merge", "--require-measured"), ("plan", "--shards"), ("run", "--shard")):
        with pytest.raises(SystemExit) as caught:
            cli.main([command, "--help"])
        assert caught.value.code == 0 and needle in capsys.readouterr().out


def test_the_same_run_in_two_folders_is_refused(tmp_path):
    write_run(tmp_path / "a", "20260101T000000Z-fffff1", EPYC, cell_records())
    write_run(tmp_path / "b", "20260101T000000Z-fffff1", NEOVERSE, cell_records())
    with pytest.raises(UsageError, match="20260101T000000Z-fffff1 is in more than one folder"):
        machines.combine(machines.load([tmp_path / "a", tmp_path / "b"]))
