"""The smoke run: an IMAGE that cannot run on this host is reported once, up front, and its
CELLs are recorded as unavailable without being started; every other CELL still runs."""

from orchestrator import run as run_module
from orchestrator.images import imagebuild
from orchestrator.matrix import matrixfile
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run
from tests import matrices

MATRIX = matrices.tiny(["llama.cpp", "testengine"], warmup=0, repetitions=1, memory_limit="512m", timeout_s=120)


def test_an_image_killed_by_sigill_is_stopped_before_its_cells(tmp_path, tinystories, monkeypatch, no_leftovers):
    real_ensure = imagebuild.ensure

    def ensure(docker, name, logs_dir, progress=print, buildargs=None, platform=None):
        if name == "testengine":  # this testengine IMAGE executes an illegal instruction as it starts
            buildargs = {**(buildargs or {}), "ON_START": "sigill"}
        return real_ensure(docker, name, logs_dir, progress, buildargs, platform)

    monkeypatch.setattr(run_module.imagebuild, "ensure", ensure)
    monkeypatch.setenv("ORCHESTRATE_SMOKE_CACHE", str(tmp_path / "smoke-cache"))
    lines = []
    run_dir = execute_run(matrixfile.parse(MATRIX, "smoke.yaml"), tmp_path / "results", lines.append)
    run, records = read_run(run_dir)
    by_engine = {r["cell"]["engine"]: r for r in records}
    assert by_engine["llama.cpp"]["status"] == "ok", by_engine["llama.cpp"]["reason"]
    broken = by_engine["testengine"]
    assert broken["status"] == "unavailable"
    assert broken["reason"].startswith("not run: the smoke run of orchestrate/testengine:")
    assert "killed by SIGILL (illegal instruction, exit status 132)" in broken["reason"]
    assert broken["outside"]["exit_code"] is None  # never started
    assert not (run_dir / "cells" / broken["cell_id"] / "runner.log").exists()
    assert run["counts"]["unavailable"] == 1 and run["counts"]["ok"] == 1
    smoke = {(s["engine"], s["format"]): s for s in run["smoke"]}
    assert smoke[("testengine", "gguf-q8_0")]["ok"] is False and smoke[("llama.cpp", "gguf-q8_0")]["ok"] is True
    assert sum("FAILED" in line and "SIGILL" in line for line in lines) == 1  # reported once, up front
