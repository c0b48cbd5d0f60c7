"""A made-up RUN folder (run.json + records) for tests of report writing; its figures are invented."""

import json
from pathlib import Path

from tests.unit.records import perplexity_record, record

RUN_ID = "20260101T000000Z-abcdef"


def made_up_records(quality: bool = False) -> list[dict]:
    """Two models x two formats x two thread counts, one OOM CELL and one CELL that disagrees; with ``quality``
    also a perplexity CELL per model x engine x format (1 thread), for the speed-against-quality chart."""
    records = []
    number = 0
    for model, scale in (("tinystories-15m", 1.0), ("tinystories-42m", 2.6)):
        for engine, fmt in (("llama.cpp", "gguf-f32"), ("llama.cpp", "gguf-q8_0"), ("transformers", "safetensors")):
            for threads in (1, 2):
                number += 1
                speed = scale * (1.0 if fmt != "gguf-q8_0" else 0.4) / threads ** 0.7
                rec = record(f"c-{number:012x}", threads=threads, fmt=fmt, engine=engine,
                             decode=(0.04 * speed, 0.05 * speed, 0.06 * speed), peak=int(50 * scale * 2**20))
                rec["cell"]["model"] = rec["provenance"]["model"]["id"] = model
                rec["run_id"] = RUN_ID
                if engine == "transformers" and threads == 2 and model == "tinystories-42m":
                    for rep in rec["result"]["repetitions"]:
                        rep["token_ids"] = [0, 1, 9, 9, 9]  # disagrees with llama.cpp's F32 after 2 tokens
                records.append(rec)
    oom = record("c-0000000000ff", status="oom", reason="killed by the kernel's OOM killer at the cell's memory limit",
                 threads=2, fmt="gguf-f32", engine="llama.cpp")
    oom["run_id"] = RUN_ID
    oom["cell"]["workload"]["name"] = "w-long"
    records.append(oom)
    for model, base in (("tinystories-15m", 20.0), ("tinystories-42m", 12.0)) if quality else ():
        for engine, fmt, loss in (("llama.cpp", "gguf-f32", 0.0), ("llama.cpp", "gguf-q8_0", 0.03),
                                  ("transformers", "safetensors", 0.001)):
            number += 1
            rec = perplexity_record(f"c-{number:012x}", engine, fmt, base * (1 + loss), model=model)
            rec["run_id"] = RUN_ID
            records.append(rec)
    return records


def run_document(records: list[dict], run_id: str = RUN_ID, brand: str = "Test CPU 9000") -> dict:
    """A run.json for ``records``, shaped as execute_run writes it."""
    return {
        "schema_version": 1, "run_id": run_id, "status": "finished", "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:05:00+00:00",
        "orchestrator": {"version": "0.1.0", "git_commit": "0" * 40, "git_dirty": False},
        "matrix": {"path": "matrix.yaml", "text": "version: 1\n", "expanded": [{"cell_id": r["cell_id"]} for r in records]},
        "plan_order": [r["cell_id"] for r in records],
        "images": {"llama.cpp": {"tag": "orchestrate/llama.cpp:test", "id": "sha256:" + "1" * 64},
                   "transformers": {"tag": "orchestrate/transformers:test", "id": "sha256:" + "2" * 64}},
        "models": {"tinystories-15m/gguf-f32": {"sha256": "3" * 64, "size": 60 * 2**20, "path": "/m/a.gguf"}},
        "host": {"fingerprint": "f", "frequency": {"ghz": 2.5, "source": "test frequency"}, "cgroup_version": 1,
                 "docker": {"version": "20.10.24"}, "kernel": "6.1.0-test", "governor": "powersave",
                 "smt_active": "1", "cpu": {"brand": brand, "logical_cpus": 2, "physical_cores": 1}},
        "counts": {}, "error": None,
    }


def write_run(root: Path, records: list[dict] | None = None, run_id: str = RUN_ID,
              brand: str = "Test CPU 9000") -> Path:
    """A RUN folder under ``root`` holding ``records`` (made-up ones by default), on a CPU named ``brand``."""
    records = made_up_records() if records is None else records
    run_dir = Path(root) / run_id
    for rec in records:
        path = run_dir / "cells" / rec["cell_id"] / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(rec))
    (run_dir / "run.json").write_text(json.dumps(run_document(records, run_id, brand)))
    return run_dir
