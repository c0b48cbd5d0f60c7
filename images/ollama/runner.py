"""orchestrate runner for Ollama: one CELL timed at Ollama's HTTP API (measurement_boundary `server-api`).

Starts `ollama serve` on 127.0.0.1 inside the container with its store under /tmp
(Ollama copies the model into it: the CELL's tmpfs must hold about three times the model),
imports the CELL's GGUF file with a Modelfile (`FROM <model path>`) through `ollama create`,
then for every repetition unloads the model (keep_alive 0: the KV cache and any cached
prompt prefix go), loads it again untimed, and streams one raw /api/generate with
num_thread = the CELL's threads (always: Ollama otherwise sizes its threads from the host,
not the cpuset), temperature 0, top_k 1, repeat_penalty 1.0, a fixed seed, num_predict =
gen_tokens and num_ctx.

The prompt is shaped with the model's tokenizer (job.model.tokenizer, the `tokenizers`
library) and sent as text without BOS (Ollama adds it as the GGUF says). Ollama has no
ignore-EOS and returns no token ids: repetitions that stopped short are marked (and the
CELL is then judged inconsistent), and the token ids are the generated text re-tokenized,
marked approximate in `extra`. Threads: per-thread CPU of the `ollama serve` process tree
(its model runner is a child process) over the last timed repetition, since each reload
starts a new runner process.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_OLLAMA (default /usr/bin/ollama).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from runnerkit import job as jobs
from runnerkit import main, proc, prompt, result

import ollamaclient

ENGINE_NAME = "ollama"
MODEL_NAME = "orchestrate-cell"
SEED = 42
log = main.log


def options(job: jobs.Job, n_prompt: int) -> dict:
    """Ollama's generation options for this CELL (num_thread always set)."""
    num_ctx = jobs.option(job, "num_ctx") or n_prompt + job.gen_tokens
    return {"num_thread": job.threads, "temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0,
            "repeat_penalty": 1.0, "seed": SEED, "num_predict": job.gen_tokens, "num_ctx": num_ctx}


def start_server(port: int, store: Path, log_file) -> subprocess.Popen:
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(store), "HOME": "/tmp",
           "OLLAMA_NOPRUNE": "1", "OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_LOADED_MODELS": "1"}
    binary = os.environ.get("ORCHESTRATE_OLLAMA", "/usr/bin/ollama")
    return subprocess.Popen([binary, "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def wait_ready(client: ollamaclient.Client, server: subprocess.Popen, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ollamaclient.OllamaError(f"ollama serve exited with status {server.returncode}")
        try:
            return client.version()
        except (OSError, ollamaclient.OllamaError):
            time.sleep(0.05)
    raise ollamaclient.OllamaError(f"ollama serve did not answer within {timeout_s:.0f} s")


def run(job: jobs.Job) -> dict:
    tokenizer, _, ids, repeats = prompt.with_hf_tokenizer(job.model_path, job.tokenizer, job.prompt, job.prompt_tokens)
    specials = {tokenizer.token_to_id(t) for t in ("<s>", "<|endoftext|>", "<|im_start|>") if tokenizer.token_to_id(t)}
    text = tokenizer.decode([i for i in ids if i not in specials], skip_special_tokens=True)
    store = Path("/tmp/ollama-store")
    store.mkdir(parents=True, exist_ok=True)
    port = proc.free_port()
    server_log = Path("/tmp/ollama-serve.log")
    with server_log.open("wb") as sink:
        server = start_server(port, store, sink)
        try:
            client = ollamaclient.Client(port)
            started = time.perf_counter()
            version = wait_ready(client, server)
            modelfile = Path("/tmp/Modelfile")
            modelfile.write_text(f"FROM {job.model_path}\n")
            env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "HOME": "/tmp"}
            created = subprocess.run([os.environ.get("ORCHESTRATE_OLLAMA", "/usr/bin/ollama"), "create", MODEL_NAME,
                                      "-f", str(modelfile)], env=env, capture_output=True, text=True)
            if created.returncode != 0:
                raise ollamaclient.OllamaError(f"ollama create failed: {created.stdout[-1000:]} "
                                               f"{created.stderr[-1000:]}")
            show = client.call("POST", "/api/show", {"model": MODEL_NAME})
            info = show.get("model_info", {})
            context = next((v for k, v in info.items() if k.endswith(".context_length")), None)
            prompt.check_context(len(ids), job.gen_tokens, context)
            opts = options(job, len(ids))
            client.load(MODEL_NAME, opts)
            load_time_s = time.perf_counter() - started
            return measure(job, client, server, ids, text, repeats, opts, version, load_time_s, tokenizer, show,
                           server_log)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            sys.stderr.write("\n".join(server_log.read_text(errors="replace").splitlines()[-15:]) + "\n")


def measure(job, client, server, ids, text, repeats, opts, version, load_time_s, tokenizer, show, server_log) -> dict:
    summaries, reps, window = [], [], None
    for index in range(job.warmup + job.repetitions):
        client.unload(MODEL_NAME)  # the KV cache and any cached prompt prefix go with the model
        client.load(MODEL_NAME, opts)  # untimed reload
        timed = index >= job.warmup
        last = index == job.warmup + job.repetitions - 1
        window = proc.CpuWindow(server.pid) if last else None
        if window:
            window.__enter__()
        generation = client.generate(MODEL_NAME, text, opts)
        if window:
            window.__exit__(None, None, None)
        if not timed:
            continue
        timing = generation.timing()
        token_ids = tokenizer.encode(generation.text, add_special_tokens=False).ids  # approximate: re-tokenized
        summaries.append({**generation.summary(), "retokenized_ids": len(token_ids)})
        reps.append({"index": index - job.warmup, "prompt_tokens": len(ids),
                     "generated_tokens": int(generation.final.get("eval_count") or generation.tokens),
                     "prefill_s": (generation.final.get("prompt_eval_duration") or 0) / 1e9,
                     **timing, "token_ids": token_ids})
        log(f"rep {index - job.warmup + 1}/{job.repetitions}: {generation.tokens} tokens "
            f"({generation.final.get('done_reason')}), ttft {timing['ttft_s'] * 1000:.1f} ms")
    reported = [int(n) for n in re.findall(r"threads=(\d+)", server_log.read_text(errors="replace"))]
    threads = result.threads(job, window, reported[-1] if reported else None,
                             "the threads= figure Ollama's runner logs at load (num_thread = the CELL's threads); "
                             "per_thread covers the last timed repetition only (each reload starts a new runner "
                             "process)")
    peak = max(filter(None, (proc.vm_hwm_bytes(pid) for pid in proc.process_tree(server.pid))), default=None)
    extra = {
        "timing_definitions": {
            "clock": "time.perf_counter in the runner (the HTTP client), over loopback",
            "load_time_s": "ollama serve start, ollama create (import of the GGUF into Ollama's store) and the "
                           "first load",
            "ttft_s": "from sending /api/generate until the first chunk carrying a token arrived (after an "
                      "untimed unload + reload)",
            "inter_token_latencies_s": "gaps between token-carrying chunks spread evenly over their tokens "
                                       "(tokens counted per chunk from logprobs)",
            "prefill_s": "Ollama's own prompt_eval_duration",
        },
        "ollama": summaries,
        "approximate_token_ids": "Ollama returns text, not ids: token_ids are the generated text re-tokenized "
                                 "with the model's tokenizer; agreement with other engines is approximate",
        "short_repetitions": [s for s in summaries if s["stopped_short"]],
        "options": opts, "prompt_text_repeats": repeats, "model_info": show.get("model_info", {}),
        "ollama_version": version,
    }
    engine = {"name": ENGINE_NAME, "version": version, "build": {"image": result.read_build_info()}}
    return result.document(job, engine, threads, load_time_s, peak, ids, reps, extra,
                           measurement_boundary="server-api")


if __name__ == "__main__":
    sys.exit(main.run("ollama-runner", run))
