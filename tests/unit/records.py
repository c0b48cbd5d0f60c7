"""Made-up CELL records for tests of the pure parts (merge, report)."""

import math


def repetition(index, decode_s, prefill_s=0.01, gen=5, prompt=4, itl=None):
    itl = itl if itl is not None else [decode_s / (gen - 1)] * (gen - 1)
    return {"index": index, "prompt_tokens": prompt, "generated_tokens": gen, "prefill_s": prefill_s,
            "decode_s": decode_s, "ttft_s": prefill_s + 0.001, "inter_token_latencies_s": itl,
            "token_ids": list(range(gen))}


def per_thread(busy, idle=1):
    """Raw per-thread CPU seconds: ``busy`` compute threads and ``idle`` helper threads."""
    return ([{"tid": 100 + i, "name": "worker", "cpu_s": 0.5 - 0.01 * i} for i in range(busy)]
            + [{"tid": 200 + i, "name": "helper", "cpu_s": 0.001} for i in range(idle)])


def record(cell_id="c-000000000001", status="ok", threads=1, fmt="gguf-f32", decode=(0.04, 0.05, 0.08),
           peak=50 * 2**20, cpu=1.5, reason=None, test_double=False, engine="llama.cpp"):
    result = None
    if status == "ok":
        result = {"schema_version": 1, "cell_id": cell_id,
                  "engine": {"name": engine, "version": "v1", "build": {}},
                  "measurement_boundary": "in-process",
                  "threads": {"requested": threads, "how": "test", "engine_reported": threads,
                              "per_thread": per_thread(busy=threads)},
                  "load_time_s": 0.2, "prompt_token_ids": [1, 2, 3, 4],
                  "repetitions": [repetition(i, d) for i, d in enumerate(decode)]}
    return {
        "schema_version": 1, "run_id": "20260101T000000Z-abcdef", "cell_id": cell_id,
        "cell": {"engine": engine, "engine_options": {}, "model": "tinystories-15m", "format": fmt,
                 "threads": threads, "workload": {"name": "w", "prompt": "x", "prompt_tokens": 4, "gen_tokens": 5},
                 "warmup": 0, "repetitions": len(decode)},
        "status": status, "reason": reason, "test_double": test_double,
        "placement": {"cpus": "1", "mems": None, "host_core_reserved": True, "note": None},
        "limits": {"memory_bytes": 2**30, "timeout_s": 60, "pids": 512},
        "outside": {"wall_s": 1.0, "peak_memory_bytes": peak if status == "ok" else None,
                    "cpu_seconds": cpu if status == "ok" else None, "exit_code": 0 if status == "ok" else 137,
                    "oom_killed": status == "oom", "timed_out": False, "method": "test", "unmeasured": {}},
        "provenance": {"image": {"tag": "orchestrate/x:1", "id": "sha256:1"}, "engine_version": "v1",
                       "model": {"id": "tinystories-15m", "format": fmt, "sha256": "0" * 64},
                       "host_fingerprint": "f"},
        "threads": {"requested": threads, "used": threads if result else None,
                    "basis": "per-thread CPU" if result else "none", "rule": "test"},
        "result": result, "log_tail": "",
    }


def with_rounds(rec, rounds, frequency=None, flags=()):
    """``rec`` with a sampling block: repetition i ran in round ``rounds[i]`` (one BATCH per round), at
    ``frequency`` ({ghz, source}) when given, with noise ``flags``."""
    batch_of = {r: i + 1 for i, r in enumerate(dict.fromkeys(rounds))}
    freq = frequency or {"ghz": None, "source": None, "samples": 0, "reason": "test"}
    rec["sampling"] = {
        "method": "test", "min": len(rounds), "max": len(rounds), "cv_target": None, "rounds": len(batch_of),
        "complete": True, "stopped": "fixed repetitions",
        "batches": [{"batch": b, "round": r, "position": b, "session": 1, "repetitions": rounds.count(r),
                     "noise": {"flags": list(flags)}, "frequency": freq} for r, b in batch_of.items()],
        "repetition_batch": [batch_of[r] for r in rounds], "noise_flags": sorted(flags), "frequency": freq}
    return rec


def rated(cell_id, engine="llama.cpp", fmt="gguf-f32", rates=(100.0,), threads=1, prefill=None, model="tinystories-15m"):
    """An ok generation CELL whose repetitions decode at exactly ``rates`` tok/s (4 tokens after the first), with
    prefill times ``prefill`` (seconds, one per repetition; default 0.01 each)."""
    rec = record(cell_id, threads=threads, fmt=fmt, engine=engine, decode=[4 / r for r in rates])
    prefill = prefill or [0.01] * len(rates)
    rec["result"]["repetitions"] = [repetition(i, 4 / r, prefill_s=p) for i, (r, p) in enumerate(zip(rates, prefill))]
    rec["cell"]["model"] = rec["provenance"]["model"]["id"] = model
    return rec


def perplexity_record(cell_id, engine="llama.cpp", fmt="gguf-f32", value=20.0, threads=1, model="tinystories-15m"):
    """An ok perplexity CELL (workload 'ppl') whose perplexity is ``value``."""
    rec = record(cell_id=cell_id, engine=engine, fmt=fmt, threads=threads)
    rec["cell"]["model"] = rec["provenance"]["model"]["id"] = model
    rec["cell"]["workload"] = {"name": "ppl", "kind": "perplexity", "text": "kjv-genesis-1", "context": 8, "stride": 4}
    nll = math.log(value)
    result = rec["result"]
    del result["prompt_token_ids"]
    result["perplexity"] = {"text": "kjv-genesis-1", "ids_sha256": "a" * 64, "tokens": 10, "context": 8, "stride": 4,
                            "windows": 2, "scored_tokens": 9, "mean_nll": nll, "perplexity": value}
    result["repetitions"] = [{"index": i, "time_s": t, "windows": 2, "scored_tokens": 9, "mean_nll": nll}
                             for i, t in enumerate((0.5, 0.3, 0.4))]
    return rec
