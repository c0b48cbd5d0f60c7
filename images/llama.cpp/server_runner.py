"""orchestrate runner for the llama-server ENGINE: one CELL timed at llama-server's HTTP API.

Starts the image's own `llama-server` (the same pinned llama.cpp tree and CPU variants as
the llama.cpp ENGINE) on 127.0.0.1 inside the container (loopback works without a
network), waits until /health answers, tokenizes the prompt with the server's /tokenize
(BOS as the model's vocabulary adds it) and shapes it with the runner kit, then for every
repetition streams one /completion: the prompt as token ids, greedy (top-k 1, temperature
0, fixed seed), n_predict = gen_tokens with end-of-sequence ignored, the prompt cache off
(every repetition pays the prefill; checked against the server's own prompt_n), token
ids returned per streamed event.

Times are taken at the client, from the streamed events (measurement_boundary
`server-api`); the server's own timings go beside them in `extra`. Threads: -t and -tb are
the CELL's threads; the per-thread CPU figures are those of the server process, not of
this runner. Speaks only the container contract (docs/contract.md).

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json),
ORCHESTRATE_LLAMA_SERVER (default llama-server), ORCHESTRATE_VERBOSE=1 (the server's log
in full on stderr; default: its last lines).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import serverclient
from runnerkit import job as jobs
from runnerkit import main, proc, prompt, result

ENGINE_NAME = "llama-server"
HEALTH_TIMEOUT_S = 300.0
SEED = 42
log = main.log


def cpu_path(server_log: str) -> dict:
    """Which ggml CPU variant llama-server loaded, from its own "loaded CPU backend from" log line."""
    found = re.search(r"loaded CPU backend from (\S+)", server_log)
    library = found.group(1) if found else None
    variant = re.sub(r"^libggml-cpu-|\.so$", "", library.rsplit("/", 1)[-1]) if library else "built-in (static)"
    amx = bool(re.search(r"AMX_INT8 = 1", server_log))
    return {"variant": variant, "library": library, "amx": amx,
            "how": "the line ggml_backend_load_all() printed in llama-server's log",
            "summary": f"ggml CPU variant {variant}" + ("" if amx else " (no AMX)")}


def server_command(job: jobs.Job, port: int) -> list[str]:
    """The llama-server command line for this CELL."""
    kv = jobs.option(job, "kv_cache_type")
    n_ctx = job.prompt_tokens + job.gen_tokens if job.prompt_tokens else 0  # 0: the model's own context
    return [os.environ.get("ORCHESTRATE_LLAMA_SERVER", "llama-server"), "-m", job.model_path,
            "--host", "127.0.0.1", "--port", str(port),
            "-t", str(job.threads), "-tb", str(job.threads),
            "-c", str(n_ctx), "-np", "1", "--cache-ram", "0", "-ctk", kv, "-ctv", kv,
            "--no-webui", "--threads-http", "1"]


def reported_threads(server_log: str) -> int | None:
    """The thread count llama-server prints at start ('system_info: n_threads = N ...')."""
    found = re.findall(r"n_threads\s*=\s*(\d+)", server_log)
    return int(found[-1]) if found else None


def request_body(ids: list[int], gen_tokens: int) -> dict:
    """One greedy, uncached, streamed completion of exactly gen_tokens tokens."""
    return {"prompt": ids, "n_predict": gen_tokens, "stream": True, "return_tokens": True, "cache_prompt": False,
            "ignore_eos": True, "temperature": 0.0, "top_k": 1, "seed": SEED, "repeat_penalty": 1.0,
            "id_slot": 0}


def repetition(client: serverclient.Client, index: int, ids: list[int], gen_tokens: int) -> tuple[dict, dict]:
    """(the contract's repetition, the server's own timings for it)."""
    streamed = client.stream("/completion", request_body(ids, gen_tokens))
    timings = streamed.final.get("timings") or {}
    if timings.get("prompt_n") != len(ids) or timings.get("cache_n", 0) != 0:
        raise RuntimeError(f"repetition {index}: the server processed {timings.get('prompt_n')} prompt tokens "
                           f"({timings.get('cache_n')} from its cache), {len(ids)} expected: the prompt cache "
                           "was not off")
    rep = streamed.repetition(index, len(ids), gen_tokens, timings["prompt_ms"] / 1000.0)
    server = {key: timings.get(key) for key in ("prompt_n", "prompt_ms", "predicted_n", "predicted_ms",
                                                 "cache_n")}
    server["stop_type"] = streamed.final.get("stop_type")
    server["events"] = streamed.events
    server["generation_settings"] = streamed.final.get("generation_settings")
    return rep, server


def run(job: jobs.Job) -> dict:
    if not Path(job.model_path).is_file():
        raise jobs.JobError(f"model file {job.model_path} not found")
    log_path = Path("/tmp/llama-server.log")
    port = proc.free_port()
    command = server_command(job, port)
    log(f"starting {' '.join(command)}")
    started = time.perf_counter()
    with log_path.open("wb") as sink:
        server = serverclient.Server(command, sink, port)
        try:
            client = server.wait_healthy(HEALTH_TIMEOUT_S)
            load_time_s = time.perf_counter() - started
            return measure(job, server, client, load_time_s, command, log_path)
        finally:
            server.stop()
            text = log_path.read_text(errors="replace")
            lines = text.splitlines()
            verbose = os.environ.get("ORCHESTRATE_VERBOSE") == "1"
            sys.stderr.write("\n".join(lines if verbose else lines[-15:]) + "\n")


def measure(job: jobs.Job, server: serverclient.Server, client: serverclient.Client, load_time_s: float,
            command: list[str], log_path: Path) -> dict:
    models = client.get("/v1/models")
    meta = (models.get("data") or [{}])[0].get("meta", {})
    props = client.get("/props")
    ids, repeats = prompt.shape(lambda text: client.post("/tokenize", {"content": text, "add_special": True})
                                ["tokens"], job.prompt, job.prompt_tokens)
    prompt.check_context(len(ids), job.gen_tokens, meta.get("n_ctx_train"))
    log(f"server healthy after {load_time_s:.3f} s; prompt {len(ids)} tokens (text x{repeats}), first {ids[:8]}")
    for index in range(job.warmup):
        repetition(client, index, ids, job.gen_tokens)
    reps, server_timings = [], []
    with proc.cpu_window(server.pid) as window:  # the server's threads, not this runner's
        for index in range(job.repetitions):
            rep, timings = repetition(client, index, ids, job.gen_tokens)
            reps.append(rep)
            server_timings.append(timings)
            if index:  # the effective sampling settings are kept once, from the first timed request
                timings.pop("generation_settings", None)
            log(f"rep {index + 1}/{job.repetitions}: ttft {rep['ttft_s'] * 1000:.2f} ms, decode "
                f"{rep['decode_s']:.4f} s ({(job.gen_tokens - 1) / rep['decode_s']:.1f} tok/s at the client, "
                f"{timings['predicted_n'] / timings['predicted_ms'] * 1000:.1f} by the server)")
    peak = proc.vm_hwm_bytes(server.pid)
    server_log = log_path.read_text(errors="replace")
    reported = reported_threads(server_log)
    # Which CPU variant ggml loaded and what it reports: the same facts the llama.cpp runner records.
    facts = [line.strip() for line in server_log.splitlines()
             if re.search(r"load_backend|system_info|CPU_REPACK|flash_attn|n_ctx", line)][:20]
    threads = result.threads(job, window, reported,
                             "the n_threads llama-server printed at start (system_info), from -t/-tb = the CELL's "
                             "threads; per_thread covers the llama-server process (HTTP and compute threads)")
    engine = {"name": ENGINE_NAME, "version": (result.read_build_info() or {}).get("engine_version")
              or os.environ.get("ORCHESTRATE_ENGINE_VERSION", "unknown"),
              "build": {"image": result.read_build_info(), "server_build_info": props.get("build_info"),
                        "server": "llama-server from the same llama.cpp tree as the llama.cpp ENGINE",
                        "cpu_path": cpu_path(server_log)}}
    extra = {
        "timing_definitions": {
            "clock": "time.perf_counter in the runner (the HTTP client), over loopback",
            "load_time_s": "from starting the llama-server process until GET /health answers 200 (process start, "
                           "model load, llama-server's warm-up decode)",
            "ttft_s": "from sending POST /completion until the streamed event carrying the first token id arrived",
            "inter_token_latencies_s": "between the arrivals of consecutive streamed events, one token id each",
            "prefill_s": "the server's own timings.prompt_ms of the request (the client cannot see where the "
                         "prefill ends)",
            "decode_s": "the sum of the client-side inter-token latencies",
        },
        "server_timings": server_timings,
        "server_command": command,
        "server_model_meta": meta,
        "server_generation_settings": server_timings[0].get("generation_settings") if server_timings else None,
        "request": request_body(["<prompt ids>"], job.gen_tokens),
        "per_thread_source": window.source,
        "server_log_facts": facts,
        "peak_rss": "VmHWM of the llama-server process",
    }
    document = result.document(job, engine, threads, load_time_s, peak, ids, reps, extra,
                               measurement_boundary="server-api")
    if peak is None:
        document["unmeasured"]["peak_rss_bytes"] = "VmHWM of the llama-server process was not readable"
    return document


if __name__ == "__main__":
    sys.exit(main.run("llama-server-runner", run))
