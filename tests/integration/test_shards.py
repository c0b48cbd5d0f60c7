"""Two shards of one MATRIX as two real RUNs, merged: the same CELLs and numbers as each RUN's own TABLE."""

import pandas as pd

from orchestrator.matrix import matrixfile
from orchestrator.merge import frames, machines
from orchestrator.plan import planner
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run
from tests import matrices

MATRIX = matrices.tiny(["llama.cpp"], formats="[gguf-f32, gguf-q8_0]", warmup=0, memory_limit="1g", timeout_s=120)


def test_two_shards_merge_into_the_whole_plan(tmp_path, tinystories, no_leftovers):
    loaded = matrixfile.parse(MATRIX, "shards.yaml")
    cells = planner.expand(loaded)
    run_dirs = [execute_run(loaded, tmp_path / "results", lambda _: None, shard=planner.Shard(i, 2)) for i in (1, 2)]
    runs = [read_run(d) for d in run_dirs]
    for index, (run, records) in enumerate(runs, 1):
        assert run["shard"] == {"index": index, "count": 2, "cells": 1, "plan_cells": 2}
        assert [c["cell_id"] for c in run["matrix"]["expanded"]] == [c.cell_id for c in cells]
        assert [r["cell_id"] for r in records] == [cells[index - 1].cell_id]
        assert records[0]["status"] == "ok"
        assert records[0]["outside"]["peak_memory_bytes"] > 0 and records[0]["outside"]["cpu_seconds"] > 0
    merged = machines.combine(machines.load([tmp_path / "results"]))
    assert list(merged.cells["cell_id"]) == [c.cell_id for c in cells]
    assert merged.refused == {} and merged.missing == () and machines.unmeasured(merged.cells) == []
    for run, records in runs:
        own = frames.cells(records, run["host"]["frequency"])
        row = merged.cells[merged.cells["cell_id"] == records[0]["cell_id"]].reset_index(drop=True)
        numbers = [c for c in own.columns if c.endswith(("_median", "_n", "_max")) or c == "gen_tps_per_core"]
        pd.testing.assert_frame_equal(row[numbers], own[numbers], check_dtype=False)
    # The Q8_0 shard had no F32 parent of its own; merged, it is compared with the other shard's.
    q8 = merged.cells[merged.cells["format"] == "gguf-q8_0"].iloc[0]
    assert q8["agreement"] == "info" and q8["agreement_reference"] == cells[0].cell_id
