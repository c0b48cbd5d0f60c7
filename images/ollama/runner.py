"""orchestrate runner for Ollama: one CELL timed at Ollama's HTTP API (measurement_boundary `server-api`).

Starts `ollama serve` on 127.0.0.1 inside the container with its store under /tmp (Ollama copies the
model into it: the CELL's tmpfs must hold about three times the model), imports the CELL's GGUF file
with a Modelfile (`FROM <model path>`) through `ollama create`, then for every repetition unloads the
model, polls /api/ps until it is gone (Ollama unloads after it answers), preloads it untimed with the
timed request's options, and streams one raw /api/generate without logprobs: num_thread = the CELL's
threads, greedy, stop strings cleared, context shift and prompt truncation off, num_predict =
gen_tokens, num_ctx with headroom. The timed request's load_duration, and the count of llama-server
starts in Ollama's log, must show that no load happened inside it.

Tokens are counted from the final chunk's eval_count; Ollama ends a stream on its token repeat limit
without a final chunk, and such a repetition is recorded as a short one. Ollama has no ignore-EOS and
returns no token ids: short repetitions are marked (the CELL is then judged inconsistent), and the token
ids are the generated text re-tokenized, marked approximate in `extra`. Threads: per-thread CPU of the
`ollama serve` process tree (llama-server is its child) over the last timed repetition.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_OLLAMA (default /usr/bin/ollama).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ollamaclient
import ollamalog
import ollamastream
from runnerkit import job as jobs
from runnerkit import main, proc, prompt, result

ENGINE_NAME = "ollama"
MODEL_NAME = "orchestrate-cell"
SEED = 42
SERVER_LOG = Path("/tmp/ollama-serve.log")
log = main.log


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


def import_model(job: jobs.Job, port: int) -> None:
    """`ollama create` from a Modelfile with only FROM (the stop strings it may add are cleared per request)."""
    modelfile = Path("/tmp/Modelfile")
    modelfile.write_text(f"FROM {job.model_path}\n")
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "HOME": "/tmp"}
    created = subprocess.run([os.environ.get("ORCHESTRATE_OLLAMA", "/usr/bin/ollama"), "create", MODEL_NAME,
                              "-f", str(modelfile)], env=env, capture_output=True, text=True)
    if created.returncode != 0:
        raise ollamaclient.OllamaError(f"ollama create failed: {created.stdout[-1000:]} {created.stderr[-1000:]}")


def cell_options(job: jobs.Job, n_prompt: int, model_context: int | None) -> dict:
    """Ollama's options for this CELL (num_ctx: the engine option, else the CELL's tokens with headroom)."""
    try:
        num_ctx = ollamaclient.context_size(n_prompt, job.gen_tokens, model_context, jobs.option(job, "num_ctx") or 0)
    except ollamaclient.OllamaError as exc:
        raise jobs.JobError(f"engine option {exc}: llama-server would end the generation on a full context") from None
    return ollamaclient.options(job.threads, job.gen_tokens, num_ctx, SEED)


def run(job: jobs.Job) -> dict:
    tokenizer, _, ids, repeats = prompt.with_hf_tokenizer(job.model_path, job.tokenizer, job.prompt, job.prompt_tokens)
    specials = {tokenizer.token_to_id(t) for t in ("<s>", "<|endoftext|>", "<|im_start|>") if tokenizer.token_to_id(t)}
    text = tokenizer.decode([i for i in ids if i not in specials], skip_special_tokens=True)
    store = Path("/tmp/ollama-store")
    store.mkdir(parents=True, exist_ok=True)
    port = proc.free_port()
    with SERVER_LOG.open("wb") as sink:
        server = start_server(port, store, sink)
        try:
            client = ollamaclient.Client(port)
            started = time.perf_counter()
            version = wait_ready(client, server)
            import_model(job, port)
            show = client.call("POST", "/api/show", {"model": MODEL_NAME})
            context = next((v for k, v in show.get("model_info", {}).items() if k.endswith(".context_length")), None)
            prompt.check_context(len(ids), job.gen_tokens, context)
            opts = cell_options(job, len(ids), context)
            client.load(MODEL_NAME, opts)
            load_time_s = time.perf_counter() - started
            return measure(job, client, server, ids, text, repeats, opts, version, load_time_s, tokenizer, show)
        except ollamaclient.OllamaError as exc:  # Ollama's own failure: one line, no traceback
            raise jobs.JobError(f"Ollama: {exc}") from None
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            sys.stderr.write("\n".join(SERVER_LOG.read_text(errors="replace").splitlines()[-15:]) + "\n")


def measure(job, client, server, ids, text, repeats, opts, version, load_time_s, tokenizer, show) -> dict:
    summaries, reps, window = [], [], None

    def starts() -> int:  # how many times Ollama has started llama-server so far
        return ollamalog.llama_server_starts(SERVER_LOG.read_text(errors="replace"))

    for index in range(job.warmup + job.repetitions):
        last = index == job.warmup + job.repetitions - 1
        window = proc.CpuWindow(server.pid) if last else None  # llama-server is a child of ollama serve
        try:
            generation, fresh = client.repetition(MODEL_NAME, text, opts, starts, window)
        except ollamaclient.OllamaError as exc:
            raise ollamaclient.OllamaError(f"repetition {index}: {exc}") from None
        if index < job.warmup:
            continue
        rep, summary = ollamastream.record(index - job.warmup, generation, fresh, len(ids), opts["num_predict"])
        rep["token_ids"] = tokenizer.encode(generation.text, add_special_tokens=False).ids  # approximate
        summary["retokenized_ids"] = len(rep["token_ids"])
        reps.append(rep)
        summaries.append(summary)
        log(f"rep {rep['index'] + 1}/{job.repetitions}: {generation.tokens} tokens ({summary['stop']}, "
            f"{generation.unseen} without a chunk), ttft {rep['ttft_s'] * 1000:.1f} ms"
            + "".join(f"; {summary[k]}" for k in ("prompt_mismatch", "context_problem") if k in summary))
    reported, how = ollamalog.threads(SERVER_LOG.read_text(errors="replace"))
    threads = result.threads(job, window, reported, how + "; per_thread covers the last timed repetition only "
                                                         "(each reload starts a new llama-server)")
    peak = max(filter(None, (proc.vm_hwm_bytes(pid) for pid in proc.process_tree(server.pid))), default=None)
    extra = {
        "timing_definitions": {
            "clock": "time.perf_counter in the runner (the HTTP client), over loopback",
            "load_time_s": "ollama serve start, ollama create (import of the GGUF into Ollama's store) and the "
                           "first load",
            "ttft_s": "from sending /api/generate until the first chunk with text arrived (after an unload, "
                      "/api/ps polled until the model was gone, and an untimed preload)",
            "inter_token_latencies_s": "gaps between chunk arrivals, one token per chunk; when Ollama streamed "
                                       "no chunk for some tokens (per_token_latencies false), the decode time "
                                       "split evenly over eval_count tokens",
            "generated_tokens": "Ollama's eval_count from the final chunk (the chunks seen when Ollama's repeat "
                                "limit ended the stream without one)",
            "prefill_s": "Ollama's own prompt_eval_duration",
            "prompt_tokens": "Ollama's own prompt_eval_count",
        },
        "ollama": summaries,
        "approximate_token_ids": "Ollama returns text, not ids: token_ids are the generated text re-tokenized "
                                 "with the model's tokenizer; agreement with other engines is approximate",
        "short_repetitions": [s for s in summaries if s["stop"] != "length"],
        "options": opts, "request": ollamaclient.REQUEST, "prompt_text_repeats": repeats,
        "model_info": show.get("model_info", {}), "model_parameters": show.get("parameters"),
        "ollama_version": version,
    }
    engine = {"name": ENGINE_NAME, "version": version, "build": {"image": result.read_build_info()}}
    return result.document(job, engine, threads, load_time_s, peak, ids, reps, extra,
                           measurement_boundary="server-api")


if __name__ == "__main__":
    sys.exit(main.run("ollama-runner", run))
