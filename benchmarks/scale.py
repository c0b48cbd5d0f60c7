"""Time the command line at scale: start-up, `plan` of many CELLs, `report` of many records.

Not a test: it prints figures for a person (and for issue notes). Examples:

    .venv/bin/python benchmarks/scale.py startup
    .venv/bin/python benchmarks/scale.py plan --cells 10000
    .venv/bin/python benchmarks/scale.py report --records 10000
    .venv/bin/python benchmarks/scale.py report --records 10000 --from results/<run-id>

`report` makes a RUN folder under a temporary directory holding N records. With
``--from`` they are copies of that real RUN's records (cycled, each with a new cell id);
without it, records shaped like a real one (64 prompt tokens, 64 generated, 5
repetitions, per-token latencies) with made-up numbers. Each figure is the wall time of
the real `orchestrate` command, run as a subprocess, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
ENGINES = [("llama.cpp", "gguf-f32"), ("llama.cpp", "gguf-q8_0"), ("llama.cpp", "gguf-q4_0"),
           ("onnxruntime", "onnx"), ("transformers", "safetensors"), ("candle", "safetensors")]


def timed(args: list[str], repeat: int) -> str:
    """Best wall time of ``args`` over ``repeat`` runs, with its CPU time (the command must succeed)."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best = min(best, (elapsed, cpu))
    return f"{best[0]:.3f} s wall, {best[1]:.3f} s CPU"


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def made_up_record(index: int, rng: random.Random) -> dict:
    """A record shaped like a real one (see docs/contract.md); its numbers are invented."""
    engine, fmt = ENGINES[index % len(ENGINES)]
    threads = 1 + (index // len(ENGINES)) % 2
    cell_id = f"c-{index:012x}"
    base = 0.004 * (1 + rng.random())
    reps = []
    for rep in range(5):
        itl = [base * (0.8 + 0.4 * rng.random()) for _ in range(63)]
        reps.append({"index": rep, "prompt_tokens": 64, "generated_tokens": 64, "prefill_s": 0.02 + 0.01 * rng.random(),
                     "decode_s": sum(itl), "ttft_s": 0.03, "inter_token_latencies_s": itl,
                     "token_ids": [rng.randrange(32000) for _ in range(64)]})
    result = {"schema_version": 1, "cell_id": cell_id, "engine": {"name": engine, "version": "bench", "build": {}},
              "measurement_boundary": "in-process",
              "threads": {"requested": threads, "used": threads, "how": "benchmark"}, "load_time_s": 0.1,
              "peak_rss_bytes": 40 * 2**20, "prompt_token_ids": list(range(1, 65)), "repetitions": reps}
    return {
        "schema_version": 1, "run_id": "", "cell_id": cell_id,
        "cell": {"engine": engine, "engine_options": {}, "model": "tinystories-15m", "format": fmt, "threads": threads,
                 "workload": {"name": f"w{index // 12}", "prompt": "Once upon a time", "prompt_tokens": 64,
                              "gen_tokens": 64}, "warmup": 1, "repetitions": 5},
        "status": "ok", "reason": None, "test_double": False,
        "placement": {"cpus": "1", "mems": None, "host_core_reserved": True, "note": None},
        "limits": {"memory_bytes": 3 * 2**30, "timeout_s": 600, "pids": 512},
        "outside": {"wall_s": 2.0, "peak_memory_bytes": 60 * 2**20, "cpu_seconds": 1.5, "exit_code": 0,
                    "oom_killed": False, "timed_out": False, "method": "benchmark", "unmeasured": {}},
        "provenance": {"image": {"tag": f"orchestrate/{engine}:bench", "id": "sha256:" + _hex(engine)},
                       "engine_version": "bench", "model": {"id": "tinystories-15m", "format": fmt, "sha256": _hex(fmt)},
                       "host_fingerprint": "bench"},
        "result": result, "log_tail": "",
    }


def make_run(folder: Path, count: int, source: Path | None) -> Path:
    """A RUN folder with ``count`` records (copies of ``source``'s records, or made-up ones)."""
    run_id = "20260101T000000Z-bbbbbb"
    run_dir = folder / run_id
    if source:
        run = json.loads((source / "run.json").read_text())
        templates = [json.loads(p.read_text()) for p in sorted((source / "cells").glob("*/record.json"))]
        if not templates:
            raise SystemExit(f"{source} has no records")
    else:
        run = {"schema_version": 1, "status": "finished", "started_at": "2026-01-01T00:00:00+00:00",
               "finished_at": "2026-01-01T01:00:00+00:00",
               "orchestrator": {"version": "bench", "git_commit": None, "git_dirty": None},
               "matrix": {"path": "benchmark", "text": "", "expanded": []}, "images": {}, "models": {},
               "host": {"fingerprint": "bench", "frequency": {"ghz": 2.5, "source": "benchmark"},
                        "cgroup_version": 1, "docker": {}}, "counts": {}, "error": None}
        templates = None
    rng = random.Random(15)
    order = []
    for index in range(count):
        if templates:
            record = copy.deepcopy(templates[index % len(templates)])
            record["cell_id"] = f"c-{index:012x}"
            if record.get("result"):
                record["result"]["cell_id"] = record["cell_id"]
            record["cell"]["workload"]["name"] += f"-{index // len(templates)}"  # distinct agreement groups
        else:
            record = made_up_record(index, rng)
        record["run_id"] = run_id
        order.append(record["cell_id"])
        path = run_dir / "cells" / record["cell_id"] / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))
    run.update(run_id=run_id, plan_order=order)
    run["matrix"]["expanded"] = [{"cell_id": c} for c in order]
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


def matrix_text(cells: int) -> str:
    """A MATRIX of llama.cpp x 4 GGUF formats x 50 thread counts x cells/200 workloads (the schema allows 256)."""
    workloads = "\n".join(f"  - {{name: w{i}, prompt: 'Once upon a time', gen_tokens: 8}}" for i in range(cells // 200))
    threads = ", ".join(str(t) for t in range(1, 51))
    return (f"version: 1\nengines:\n  - name: llama.cpp\nmodels:\n  - id: tinystories-15m\n"
            f"    formats: [gguf-f32, gguf-f16, gguf-q8_0, gguf-q4_0]\nthreads: [{threads}]\nworkloads:\n{workloads}\n")


def main() -> None:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("what", choices=["startup", "plan", "report"])
    top.add_argument("--records", type=int, default=10000)
    top.add_argument("--cells", type=int, default=10000)
    top.add_argument("--from", dest="source", type=Path, help="a real RUN folder whose records are copied")
    top.add_argument("--repeat", type=int, default=3)
    args = top.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.what == "startup":
            (tmp / "m.yaml").write_text((ROOT / "matrix.yaml").read_text())
            for label, extra in (("--help", ["--help"]), ("validate", ["validate", str(tmp / "m.yaml")]),
                                 ("plan", ["plan", str(tmp / "m.yaml")])):
                print(f"orchestrate {label:10} {timed(ORCHESTRATE + extra, args.repeat)}")
        elif args.what == "plan":
            (tmp / "m.yaml").write_text(matrix_text(args.cells))
            count = subprocess.run(ORCHESTRATE + ["plan", str(tmp / "m.yaml")], cwd=ROOT, capture_output=True,
                                   text=True, check=True).stdout.splitlines()[-1]
            print(f"orchestrate plan ({count}): {timed(ORCHESTRATE + ['plan', str(tmp / 'm.yaml')], args.repeat)}")
        else:
            started = time.perf_counter()
            run_dir = make_run(tmp, args.records, args.source)
            print(f"made {args.records} records in {time.perf_counter() - started:.1f} s"
                  + (f" (copies of {args.source})" if args.source else " (real-shaped, made-up numbers)"))
            seconds = timed(ORCHESTRATE + ["report", str(run_dir)], args.repeat)
            size = sum(p.stat().st_size for p in (run_dir / "tables").iterdir()) / 2**20
            page = (run_dir / "report.html").stat().st_size / 2**20
            print(f"orchestrate report ({args.records} records): {seconds}; tables {size:.1f} MiB, "
                  f"report.html {page:.1f} MiB")
            shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
