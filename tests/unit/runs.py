"""Made-up RUN folders and typed RUNs for tests of compare, bundle and reproduce (no Docker)."""

import copy
import json

from orchestrator.results import rundata
from tests.unit import records

RUN_ID = "20260101T000000Z-abcdef"
SHA = "a" * 64


def host(brand="AMD EPYC 9B14", fingerprint="f"):
    return {"fingerprint": fingerprint, "frequency": {"ghz": 2.6, "source": "test"}, "cgroup_version": 1,
            "docker": {"version": "20.10.24", "cgroup_driver": "cgroupfs", "storage_driver": "overlay2"},
            "machine": "x86_64", "kernel": "6.1.0", "governor": None, "smt_active": "0", "boost": None,
            "memory_total_bytes": 2**34, "cpu": {"brand": brand, "vendor": "AuthenticAMD", "family": 25, "model": 17,
                                                 "logical_cpus": 2}}


def cell_record(cell_id, threads=1, speed=1.0, spread=(1.0, 1.02, 0.98, 1.01, 0.99), sha=SHA,
                tag="orchestrate/llama.cpp:111111111111", engine_version="v1", cpus="1", run_id=RUN_ID):
    """An ok CELL whose decode and prefill are ``speed`` times as fast as the baseline, per repetition."""
    rec = records.record(cell_id=cell_id, threads=threads, decode=[0.04 / speed * s for s in spread])
    rec["run_id"] = run_id
    rec["result"]["repetitions"] = [records.repetition(i, 0.04 / speed * s, prefill_s=0.01 / speed * s)
                                    for i, s in enumerate(spread)]
    rec["provenance"]["model"]["sha256"] = sha
    rec["provenance"]["image"]["tag"] = tag
    rec["provenance"]["engine_version"] = engine_version
    rec["result"]["engine"]["version"] = engine_version
    rec["placement"]["cpus"] = cpus
    return rec


def run_doc(cell_ids, brand="AMD EPYC 9B14", sha=SHA, tag="orchestrate/llama.cpp:111111111111", run_id=RUN_ID,
            matrix_text="version: 1\n"):
    return {"schema_version": 1, "run_id": run_id, "status": "finished", "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:01:00+00:00",
            "orchestrator": {"version": "0.1.0", "git_commit": "0" * 40, "git_dirty": False},
            "matrix": {"path": "matrix.yaml", "text": matrix_text, "expanded": [{"cell_id": c} for c in cell_ids]},
            "plan_order": list(cell_ids),
            "images": {"llama.cpp": {"tag": tag, "id": "sha256:" + "1" * 64, "base": "debian:bookworm-slim",
                                     "base_id": "sha256:" + "2" * 64, "labels": {}}},
            "models": {"tinystories-15m/gguf-f32": {"sha256": sha, "size": 1, "path": "/nowhere/gguf/model-f32.gguf"}},
            "host": host(brand), "counts": {"ok": len(cell_ids)}, "error": None}


def typed(run, recs, source="made-up"):
    return rundata.Run.from_documents(copy.deepcopy(run), copy.deepcopy(recs), source)


def write_folder(root, run, recs):
    """A RUN folder on disk as execute_run leaves it (run.json and cells/<id>/record.json)."""
    folder = root / run["run_id"]
    for rec in recs:
        path = folder / "cells" / rec["cell_id"] / "record.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    (folder / "run.json").write_text(json.dumps(run))
    return folder
