"""TEST DOUBLE runner: speaks the CELL contract, runs no model, misbehaves on request.

behaviour (engine option): ok | oom | sleep | crash | invalid | threads-mismatch.
'ok' times a trivial loop with a real clock; its numbers describe nothing but the loop.
"""

import json
import os
import sys
import threading
import time


def threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


def main() -> int:
    job = json.load(open(os.environ.get("ORCHESTRATE_JOB", "/job/job.json")))
    behaviour = job["engine"]["options"].get("behaviour", "ok")
    out = job["output_dir"]
    if behaviour == "crash":
        print("testengine: crashing on purpose", file=sys.stderr)
        return 3
    if behaviour == "sleep":
        time.sleep(10**6)
    if behaviour == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if behaviour == "invalid":
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump({"schema_version": 1, "cell_id": job["cell_id"], "note": "missing every measured field"}, f)
        return 0
    stop = threading.Event()
    extra = job["threads"] - 1 + (1 if behaviour == "threads-mismatch" else 0)  # one thread too many
    workers = [threading.Thread(target=stop.wait) for _ in range(max(extra, 0))]
    for worker in workers:
        worker.start()
    used = threads_now()
    n_prompt = job["workload"]["prompt_tokens"] or 4
    n_gen = job["workload"]["gen_tokens"]
    reps = []
    for index in range(job["warmup"] + job["repetitions"]):
        start = time.perf_counter()
        sum(range(20000))
        first = time.perf_counter()
        stamps = [first]
        for _ in range(n_gen - 1):
            sum(range(2000))
            stamps.append(time.perf_counter())
        if index < job["warmup"]:
            continue
        itl = [b - a for a, b in zip(stamps, stamps[1:])]
        reps.append({"index": index - job["warmup"], "prompt_tokens": n_prompt, "generated_tokens": n_gen,
                     "prefill_s": first - start, "decode_s": sum(itl), "ttft_s": first - start,
                     "inter_token_latencies_s": itl, "token_ids": list(range(n_gen))})
    stop.set()
    result = {
        "schema_version": 1, "cell_id": job["cell_id"],
        "engine": {"name": "testengine", "version": "test-double", "build": {"test_double": True}},
        "measurement_boundary": "in-process",
        "threads": {"requested": job["threads"], "used": used, "how": "count of /proc/self/task"},
        "load_time_s": 0.0, "peak_rss_bytes": None, "prompt_token_ids": list(range(n_prompt)),
        "repetitions": reps, "unmeasured": {"peak_rss_bytes": "test double"},
    }
    tmp = os.path.join(out, ".result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(out, "result.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
