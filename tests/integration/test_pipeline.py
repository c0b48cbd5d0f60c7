"""A whole RUN against the real Docker engine: a real llama.cpp CELL and misbehaving test-double CELLs."""

import json

from orchestrator import schemas
from orchestrator.matrix import matrixfile
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run
from tests import matrices

MATRIX = matrices.tiny(["llama.cpp"] + [f"testengine\n    options: {{behaviour: {b}}}" for b in
                                        ("oom", "sleep", "crash", "invalid", "threads-mismatch")])


def test_run_records_every_status_and_goes_on(tmp_path, tinystories, no_leftovers):
    run_dir = execute_run(matrixfile.parse(MATRIX, "pipeline.yaml"), tmp_path / "results", lambda _: None)
    run, records = read_run(run_dir)  # validates run.json and every record
    assert run["status"] == "finished"
    statuses = {(r["cell"]["engine"], r["cell"]["engine_options"].get("behaviour")): r["status"] for r in records}
    assert statuses == {
        ("llama.cpp", None): "ok",
        ("testengine", "oom"): "oom",
        ("testengine", "sleep"): "timeout",
        ("testengine", "crash"): "crashed",
        ("testengine", "invalid"): "invalid",
        ("testengine", "threads-mismatch"): "invalid",
    }
    assert run["counts"] == {"ok": 1, "oom": 1, "timeout": 1, "crashed": 1, "invalid": 2, "unavailable": 0}

    ok = next(r for r in records if r["status"] == "ok")
    result = ok["result"]
    assert schemas.problems("result", result) == []
    assert result["engine"]["name"] == "llama.cpp"
    assert result["threads"]["requested"] == 1 and ok["threads"]["used"] == 1 and result["threads"]["per_thread"]
    assert all(rep["generated_tokens"] == 16 and len(rep["inter_token_latencies_s"]) == 15
               for rep in result["repetitions"])
    assert ok["outside"]["peak_memory_bytes"] > 0 and ok["outside"]["cpu_seconds"] > 0
    assert ok["provenance"]["model"]["sha256"] == tinystories["gguf-q8_0"].sha256
    assert ok["placement"]["cpus"]

    reasons = {r["cell"]["engine_options"].get("behaviour"): r["reason"] for r in records if r["status"] != "ok"}
    assert "OOM" in reasons["oom"]
    assert "timeout" in reasons["sleep"]
    assert "status 3" in reasons["crash"] and "crashing on purpose" in reasons["crash"]
    assert "schemas/result.schema.json" in reasons["invalid"]
    assert "the cell asked for 1" in reasons["threads-mismatch"] or "ran with" in reasons["threads-mismatch"]

    tables = run_dir / "tables"
    for name in ("cells.md", "cells.csv", "cells.json", "repetitions.csv", "repetitions.json"):
        assert (tables / name).is_file()
    rows = json.loads((tables / "cells.json").read_text())
    assert len(rows) == 6
    llama = next(r for r in rows if r["engine"] == "llama.cpp")
    assert llama["gen_tps_median"] > 0 and llama["gen_tps_n"] == 2
    assert "TEST DOUBLE" in (tables / "cells.md").read_text()


def test_a_finished_run_is_never_overwritten(tmp_path, tinystories, no_leftovers):
    text = MATRIX.split("  - name: testengine\n    options: {behaviour: oom}")[0] + MATRIX[MATRIX.index("models:"):]
    loaded = matrixfile.parse(text, "one.yaml")
    first = execute_run(loaded, tmp_path, lambda _: None)
    second = execute_run(loaded, tmp_path, lambda _: None)
    assert first != second and first.is_dir() and second.is_dir()
    assert read_run(first)[0]["status"] == "finished"
