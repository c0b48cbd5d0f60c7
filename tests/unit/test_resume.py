"""What a resumed RUN keeps from its run.json, and what it refuses."""

import pytest

from orchestrator.errors import UsageError
from orchestrator.execute import resume
from orchestrator.files import writing
from orchestrator.matrix import matrixfile
from tests.unit.runfolder import RUN_ID, made_up_records, run_document

TEXT = ("version: 1\nengines: [{name: llama.cpp}]\nmodels: [{id: tinystories-15m, formats: [gguf-f32]}]\n"
        "threads: [1]\nworkloads: [{name: w, prompt: x, gen_tokens: 8}]\n")


def test_carry_over_keeps_the_runs_identity_and_history_and_opens_a_new_session():
    previous = {**run_document([]), "status": "interrupted", "sampling": {"seed": 9, "seed_source": "MATRIX"},
                "sessions": [{"session": 1, "started_at": "t0", "finished_at": None, "resumed": False, "batches": []}]}
    fresh = {**run_document([]), "run_id": "other", "started_at": "t9", "status": "running"}
    merged = resume.carry_over(previous, fresh)
    assert merged["run_id"] == RUN_ID and merged["started_at"] == previous["started_at"]
    assert merged["status"] == "running" and merged["sampling"]["seed"] == 9
    session = resume.new_session(merged, resumed=True)
    assert session["session"] == 2 and session["resumed"] and len(merged["sessions"]) == 2


def test_carry_over_refuses_another_host():
    previous = run_document([])
    fresh = {**run_document([]), "host": {**previous["host"], "fingerprint": "elsewhere"}}
    with pytest.raises(UsageError, match="resume it on its own machine"):
        resume.carry_over(previous, fresh)


def test_a_run_written_before_sessions_gets_a_first_session_placeholder():
    merged = resume.carry_over(run_document([]), run_document([]))
    assert merged["sessions"][0]["session"] == 1 and merged["sessions"][0]["batches"] is None


def test_seed_comes_from_the_run_then_the_matrix_then_chance():
    seeded = matrixfile.parse(TEXT + "seed: 5\n")
    assert resume.seed_of(seeded, {"sampling": {"seed": 3, "seed_source": "MATRIX"}}) == (3, "MATRIX")
    assert resume.seed_of(seeded, None) == (5, "MATRIX")
    seed, source = resume.seed_of(matrixfile.parse(TEXT), None)
    assert 0 <= seed < 2 ** 32 and source.startswith("drawn")


def test_a_finished_run_with_every_cell_ok_has_nothing_to_resume(tmp_path):
    records = made_up_records()[:1]
    doc = {**run_document(records), "matrix": {"path": "m.yaml", "text": TEXT, "expanded": []},
           "counts": {"ok": 1, "oom": 0}}
    writing.write_json(tmp_path / "run.json", doc)
    with pytest.raises(UsageError, match="nothing to resume"):
        resume.load(tmp_path)
    writing.write_json(tmp_path / "run.json", {**doc, "status": "interrupted"})
    run, loaded, shard = resume.load(tmp_path)
    assert run["run_id"] == RUN_ID and loaded.threads == (1,) and shard is None
