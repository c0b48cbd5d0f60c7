"""rundata.py: RUN documents read into typed classes, with schema versions and the upgrade path."""

import math

import pytest

from orchestrator.errors import ResultError
from orchestrator.results import documents, rundata
from tests.unit import runs


def test_a_run_folder_reads_into_typed_cells_and_host(tmp_path):
    ids = ["c-000000000001", "c-000000000002"]
    folder = runs.write_folder(tmp_path, runs.run_doc(ids), [runs.cell_record(i) for i in ids])
    run = rundata.load(folder)
    assert run.info.run_id == runs.RUN_ID and run.info.plan_order == tuple(ids)
    assert run.info.host.cpu_brand == "AMD EPYC 9B14" and run.info.host.docker_version == "20.10.24"
    assert run.info.images["llama.cpp"].content == "111111111111"
    assert run.info.models == {"tinystories-15m/gguf-f32": runs.SHA}
    cell = run.cells["c-000000000001"]
    assert (cell.engine, cell.threads, cell.status, cell.model_sha256) == ("llama.cpp", 1, "ok", runs.SHA)
    assert cell.label == "llama.cpp tinystories-15m/gguf-f32 t1 w"


def test_repetition_metrics_match_the_table_definitions():
    rep = rundata.Repetition(0, 64, 5, 0.032, 0.04, 0.033, (0.01, 0.01, 0.01, 0.01))
    assert rep.gen_tps == pytest.approx(4 / 0.04)  # (generated - 1) / decode time
    assert rep.prompt_tps == pytest.approx(2000)
    assert rep.ttft_ms == pytest.approx(33) and rep.itl_p50_ms == pytest.approx(10)
    assert math.isnan(rundata.Repetition(0, 1, 1, 0, 0, 0, ()).gen_tps)


def test_cells_that_did_not_end_ok_have_no_samples():
    cell = rundata.CellRun.from_json(runs.records.record(status="oom", reason="killed"))
    assert cell.status == "oom" and cell.repetitions == () and cell.samples("gen_tps") == ()


def test_a_record_written_before_the_threads_verdict_is_upgraded_on_load():
    old = runs.cell_record("c-000000000001", threads=2)
    del old["threads"]
    assert rundata.CellRun.from_json(old).threads_used == 2  # the runner's figure
    upgraded = documents.upgrade("record", old)
    assert upgraded["threads"]["rule"] == "upgraded on load"


def test_run_json_without_later_fields_is_upgraded():
    doc = runs.run_doc(["c-000000000001"])
    for key in ("counts", "error"):
        doc.pop(key)
    upgraded = documents.upgrade("run", doc)
    assert upgraded["shard"] is None and upgraded["smoke"] == [] and upgraded["counts"] == {}
    assert rundata.RunInfo.from_json(doc).shard is None


def test_a_newer_or_unknown_schema_version_is_refused():
    with pytest.raises(ResultError, match="newer orchestrator"):
        documents.upgrade("run", {"schema_version": documents.SCHEMA_VERSION + 1})
    with pytest.raises(ResultError, match="not a version"):
        documents.upgrade("record", {"schema_version": "1"})
