"""Smoke runs: one tiny job per engine x format, cached; a failed one stops that IMAGE's CELLs."""

import hashlib
from pathlib import Path

import pytest

from orchestrator.execute import smoke
from orchestrator.execute.record import CellSettings
from orchestrator.host.cpuset import Assignment
from orchestrator.images.imagebuild import Built
from orchestrator.matrix.matrixfile import Workload
from orchestrator.models.modelstore import Prepared
from orchestrator.plan import planner
from orchestrator.results.judge import CellStatus, schemas

HOST = {"machine": "x86_64", "cpu": {"brand": "Test CPU", "family": 6, "model": 207, "flags": ["avx2", "amx_tile"]}}
WORKLOAD = Workload("p64-g64", "Once upon a time", 64, 64)


def make_cell(engine, fmt, model="m", threads=2, options="{}"):
    cell = planner.Cell("", engine, options, model, fmt, threads, WORKLOAD)
    return planner.Cell(planner.cell_id(cell.coordinates()), engine, options, model, fmt, threads, WORKLOAD)


def built(engine):
    return Built(engine, f"orchestrate/{engine}:abc", f"sha256:{engine}", "base", "sha256:base", {}, None, False)


def prepared(model, fmt, size):
    sha256 = hashlib.sha256(f"{model}/{fmt}".encode()).hexdigest()
    return Prepared(model, fmt, Path("/store") / model, f"{model}.{fmt}", sha256, size)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATE_SMOKE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def base_settings(cell):
    return CellSettings("20261129T000000Z-abcdef", cell, built(cell.engine), prepared(cell.model, cell.format, 1),
                        Assignment((1,), None, True), 0, 1, 1 << 30, 600.0, "fp")


class FakeRunner:
    """Stands in for execute.run_cell: says how each smoke CELL ended, by engine and format."""

    def __init__(self, statuses):
        self.statuses, self.calls = statuses, []

    def __call__(self, settings, folder):
        self.calls.append(settings)
        status = self.statuses.get((settings.cell.engine, settings.cell.format), CellStatus.OK)
        reason = None if status is CellStatus.OK else "killed by SIGILL (illegal instruction, exit status 132)"
        return {"status": status.value, "reason": reason}


def test_one_smoke_cell_per_engine_and_format_on_the_smallest_model_one_thread():
    cells = [make_cell("llama.cpp", "gguf-q8_0", "big"), make_cell("llama.cpp", "gguf-q8_0", "small"),
             make_cell("llama.cpp", "gguf-q8_0", "small", threads=1, options='{"kv_cache_type":"f32"}'),
             make_cell("candle", "gguf-q8_0", "small")]
    sizes = {("big", "gguf-q8_0"): 100, ("small", "gguf-q8_0"): 10}
    chosen = smoke.representatives(cells, sizes)
    assert sorted((c.engine, c.model, c.format) for c in chosen) == [
        ("candle", "small", "gguf-q8_0"), ("llama.cpp", "small", "gguf-q8_0")]
    for cell in chosen:
        assert cell.threads == 1 and cell.workload.name == "smoke" and cell.engine_options == {}
        assert cell.cell_id == planner.cell_id(cell.coordinates()) and cell.cell_id not in {c.cell_id for c in cells}


def test_a_failed_smoke_run_is_reported_and_a_passed_one_is_cached(tmp_path, cache):
    cells = [make_cell("llama.cpp", "gguf-q8_0"), make_cell("llama.cpp", "gguf-f32"), make_cell("candle", "gguf-q8_0")]
    models = {("m", f): prepared("m", f, 10) for f in ("gguf-q8_0", "gguf-f32")}
    images = {e: built(e) for e in ("llama.cpp", "candle")}
    runner = FakeRunner({("llama.cpp", "gguf-q8_0"): CellStatus.CRASHED})
    lines = []
    out = smoke.check(runner, base_settings(cells[0]), cells, images, models, HOST, tmp_path / "smoke", lines.append)
    assert not out[("llama.cpp", "gguf-q8_0")].ok and "SIGILL" in out[("llama.cpp", "gguf-q8_0")].reason
    assert out[("llama.cpp", "gguf-f32")].ok and out[("candle", "gguf-q8_0")].ok
    assert len(runner.calls) == 3 and any("FAILED" in line for line in lines)
    assert len(list(cache.glob("*.json"))) == 2  # only passed smoke runs are cached
    again = FakeRunner({("llama.cpp", "gguf-q8_0"): CellStatus.CRASHED})
    out = smoke.check(again, base_settings(cells[0]), cells, images, models, HOST, tmp_path / "smoke2", print)
    assert [s.cell.engine + "/" + s.cell.format for s in again.calls] == ["llama.cpp/gguf-q8_0"]
    assert out[("llama.cpp", "gguf-f32")].cached and not out[("llama.cpp", "gguf-q8_0")].ok


def test_another_cpu_or_image_is_smoke_run_again():
    key = smoke.cache_key("sha256:img", HOST, "ab" * 32)
    other_cpu = {**HOST, "cpu": {**HOST["cpu"], "model": 143}}
    assert smoke.cache_key("sha256:img", other_cpu, "ab" * 32) != key
    assert smoke.cache_key("sha256:other", HOST, "ab" * 32) != key


def test_oom_or_timeout_in_the_smoke_run_does_not_block_the_cells(tmp_path):
    cells = [make_cell("llama.cpp", "gguf-f32")]
    runner = FakeRunner({("llama.cpp", "gguf-f32"): CellStatus.TIMEOUT})
    out = smoke.check(runner, base_settings(cells[0]), cells, {"llama.cpp": built("llama.cpp")},
                      {("m", "gguf-f32"): prepared("m", "gguf-f32", 1)}, HOST, tmp_path, print)
    assert out[("llama.cpp", "gguf-f32")].ok


def test_a_blocked_cell_gets_a_valid_unavailable_record(tmp_path):
    cell = make_cell("llama.cpp", "gguf-q8_0")
    outcome = smoke.Outcome("llama.cpp", "gguf-q8_0", False, "killed by SIGILL (illegal instruction)", False, None)
    reason = smoke.blocked_reason(outcome, "orchestrate/llama.cpp:abc")
    document = smoke.write_not_run(base_settings(cell), tmp_path / cell.cell_id, reason)
    assert document["status"] == "unavailable" and document["reason"].startswith("not run: the smoke run of")
    assert document["outside"]["peak_memory_bytes"] is None and document["result"] is None
    assert not schemas.problems("record", document)
    assert (tmp_path / cell.cell_id / "record.json").is_file()
