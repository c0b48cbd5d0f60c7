"""orchestrate runner for llama.cpp: the runner kit does the contract, orchestrate-runner (C++) times llama.cpp.

The C++ half (runner.cpp) loads the GGUF model, tokenizes with llama.cpp's vocabulary and
times prefill + greedy decode (or perplexity windows) itself; the kit (runnerkit.native)
checks the job, shapes the prompt, reads per-thread CPU and VmHWM of the C++ process and
assembles the RESULT. This file adds what only llama.cpp's runner says: the image's build
record, llama.cpp's own timers, the harness share of each token, and with the option
``llama_bench`` llama.cpp's own benchmark on the same cores, model and shapes (ABBA).

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json),
ORCHESTRATE_LLAMA_RUNNER (default orchestrate-runner), ORCHESTRATE_LLAMA_BENCH (default
llama-bench), ORCHESTRATE_VERBOSE=1 (all of llama.cpp's log).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from runnerkit import job as jobs
from runnerkit import main, native, result

ENGINE_NAME = "llama.cpp"
log = main.log

LOAD = ("llama_model_load_from_file + llama_init_from_model (mmap'd weights: pages may still fault in during the "
        "first (warmup) run)")
GENERATION_TIMING = {
    "clock": "std::chrono::steady_clock, in process",
    "load_time_s": LOAD,
    "prefill_s": "one llama_decode over the whole prompt batch, until the last position's logits are readable "
                 "(llama_get_logits_ith, which synchronizes)",
    "ttft_s": "prefill_s + greedy argmax over the vocabulary: start of prefill until the first token id is known",
    "inter_token_latencies_s": "between consecutive generated token ids: llama_decode of one token + logits "
                               "readout + argmax",
    "decode_s": "sum of inter_token_latencies_s",
    "kv_cache": "llama_memory_clear(llama_get_memory(ctx), true) before every repetition, outside the timed span",
}
PERPLEXITY_TIMING = {
    "clock": "std::chrono::steady_clock, in process",
    "load_time_s": LOAD,
    "time_s": "one evaluation of the whole text: for every window, llama_memory_clear (empty KV cache) + one "
              "llama_decode of the window's ids at positions 0.. (logits only where a scored id is predicted) + "
              "scoring (llama_get_logits_ith, logsumexp in double)",
    "warmup": "the first window only, untimed, warmup times",
}


def system_info_parsed(info: str) -> dict:
    """llama_print_system_info() as data: "CPU : SSE3 = 1 | AVX = 1 | ..." -> {"CPU.SSE3": True, ...}."""
    features, section = {}, ""
    for part in info.split("|"):
        if " : " in part:
            section, part = (s.strip() for s in part.split(" : ", 1))
        if "=" not in part:
            continue
        key, value = (s.strip() for s in part.split("=", 1))
        if key:
            features[f"{section}.{key}" if section else key] = {"1": True, "0": False}.get(value, value)
    return features


def engine_info(loaded: dict) -> dict:
    """name, version and build: the image's build record + what the C++ runner read from llama.cpp."""
    native_build = loaded["engine"]["build"]
    build = result.read_build_info()
    if build is None:
        path = os.environ.get("ORCHESTRATE_BUILD_INFO", "/opt/engine/build.json")
        log(f"warning: {path} not found; build details limited to llama_print_system_info()")
        build = {"build_info_missing": path}
    version = build.get("engine_version") or loaded["engine"]["version"]
    build.update({"cpu_path": native_build["cpu_path"], "system_info": native_build["system_info"],
                  "system_info_parsed": system_info_parsed(native_build["system_info"])})
    return {"name": ENGINE_NAME, "version": version, "build": build}


def threads(job: jobs.Job, measured: native.Measured) -> dict:
    context = measured.prepared["context"]
    if context["n_threads"] != job.threads:
        log(f"warning: engine reports {context['n_threads']} threads, job requested {job.threads}")
    return result.threads(job, measured.window, context["n_threads"],
                          f"llama_n_threads(ctx)={context['n_threads']} and llama_n_threads_batch(ctx)="
                          f"{context['n_threads_batch']} (set through llama_context_params.n_threads/n_threads_batch)")


def common_extra(measured: native.Measured) -> dict:
    return {"load_breakdown_s": {"model": measured.loaded["load_s"], "context": measured.prepared["prepare_s"]},
            "model": measured.loaded["model"], "context": measured.prepared["context"]}


def gen_rate(job: jobs.Job, seconds: float) -> float:
    return (job.gen_tokens - 1) / seconds if seconds > 0 else 0.0


def bench_once(args: list[str]) -> dict:
    """llama-bench once as a child process (same container, cores and model file): its JSON, command, wall time."""
    line = " ".join(args)
    log(f"running {line}")
    started = time.monotonic()
    done = subprocess.run(args, stdout=subprocess.PIPE, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench failed (status {done.returncode})")
    try:
        parsed = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"llama-bench output is not JSON: {exc}") from exc
    return {"command": args, "command_line": line, "wall_s": wall, "results": parsed}


def llama_bench(job: jobs.Job, n_prompt: int) -> dict:
    """llama-bench at the runner's own shapes: prefill of n_prompt ids from an empty cache (pp), and decode of
    gen_tokens - 1 ids after a cache of n_prompt (tg at depth n_prompt), each with the job's repetitions."""
    common = [os.environ.get("ORCHESTRATE_LLAMA_BENCH") or "llama-bench", "-m", job.model_path,
              "-t", str(job.threads), "-r", str(job.repetitions), "-o", "json"]
    return {
        "how": "llama-bench run as child processes in the same container on the same cores and model file, "
               "after the runner's timed repetitions (its model stays loaded; mmapped pages are shared): "
               "prefill = -p n_prompt -n 0 (empty cache, as our prefill_s), decode = -p 0 -n gen_tokens-1 "
               "-d n_prompt (tg at the depth our inter-token latencies start from, same number of tokens); "
               "llama-bench uses its own token ids and never samples; its samples_ts are tokens per second",
        "prefill": bench_once(common + ["-p", str(n_prompt), "-n", "0"]),
        "decode": bench_once(common + ["-p", "0", "-n", str(job.gen_tokens - 1), "-d", str(n_prompt)]),
    }


def generation_extra(job: jobs.Job, engine: native.Native, measured: native.Measured) -> dict:
    reps, raw = measured.repetitions, measured.raw
    extra = {"timing_definitions": GENERATION_TIMING, **common_extra(measured),
             "prompt": {"text_repeats": measured.repeats, "tokenize": "llama_tokenize(add_special=true, "
                                                                      "parse_special=false)"}}
    extra["generated_text"] = {
        "text": engine.detokenize(reps[0]["token_ids"]),
        "how": "llama_detokenize(remove_special=false, unparse_special=true) of repetition 0's token_ids; "
               "bytes that are not valid UTF-8 (a character cut at the end) are written as U+FFFD"}
    extra["llama_perf"] = {
        "how": "llama_perf_context(ctx) after each timed repetition (reset before it): llama.cpp's own "
               "prompt-eval and eval timers, for cross-checking prefill_s and decode_s",
        "repetitions": [{"index": i, **r["llama_perf"]} for i, r in enumerate(raw)]}
    extra["threads_observed"] = {"os_threads_during_generation": measured.window.threads_seen,
                                 "source": measured.window.source, "tasks": measured.window.per_thread}
    extra["harness"] = {
        "how": "decode_engine_s: per generated token, llama_decode until llama_get_logits_ith returns (the engine's "
               "own work); the rest of decode_s is choosing the next token (argmax over the vocabulary) and the "
               "loop; harness_share = 1 - decode_engine_s / decode_s",
        "repetitions": [{"index": rep["index"], "decode_s": rep["decode_s"], "decode_engine_s": r["decode_engine_s"],
                         "engine_only_tok_s": gen_rate(job, r["decode_engine_s"]),
                         "harness_share": 1.0 - r["decode_engine_s"] / rep["decode_s"] if rep["decode_s"] > 0 else 0.0}
                        for rep, r in zip(reps, raw)]}
    if jobs.option(job, "llama_bench"):
        # ABBA: our repetitions (A, above), llama-bench's prefill and decode (B B), then ours again (A),
        # so drift during the CELL falls on both.
        bench = llama_bench(job, len(measured.prompt_ids))
        again = engine.generate(measured.prompt_ids, job.gen_tokens, job.repetitions)
        bench["order"] = "ABBA: result repetitions (A), llama-bench prefill and decode (B B), second_a (A)"
        bench["second_a"] = [
            {"index": i, "decode_s": sum(r["inter_token_latencies_s"]), "decode_engine_s": r["decode_engine_s"],
             "gen_tok_s": gen_rate(job, sum(r["inter_token_latencies_s"])),
             "engine_only_tok_s": gen_rate(job, r["decode_engine_s"]), "prefill_s": r["prefill_s"]}
            for i, r in enumerate(again)]
        extra["llama_bench"] = bench
    return extra


def perplexity_extra(job: jobs.Job, measured: native.Measured) -> dict:
    extra = {"timing_definitions": PERPLEXITY_TIMING, **common_extra(measured), "ids_file": measured.ids_file}
    extra["llama_perf"] = {
        "how": "llama_perf_context(ctx) after each timed evaluation (reset before it): llama.cpp's own prompt-eval "
               "timer over all the windows, for cross-checking time_s",
        "repetitions": [{"index": i, **r["llama_perf"]} for i, r in enumerate(measured.raw)]}
    if jobs.option(job, "llama_bench"):
        # A perplexity job ignores it rather than refusing, so one MATRIX setting can cover both workloads.
        log("note: engine option llama_bench applies to generation only; ignored for perplexity")
        extra["llama_bench"] = "not run: llama-bench has no perplexity mode (the option applies to generation only)"
    return extra


def describe(job: jobs.Job, engine: native.Native, measured: native.Measured) -> tuple[dict, dict, dict]:
    """The RESULT's engine, threads and extra (runnerkit.native.run)."""
    log(f"CPU path: {measured.loaded['engine']['build']['cpu_path']['summary']}")
    extra = perplexity_extra(job, measured) if job.perplexity else generation_extra(job, engine, measured)
    return engine_info(measured.loaded), threads(job, measured), extra


if __name__ == "__main__":
    native.serve(ENGINE_NAME, [os.environ.get("ORCHESTRATE_LLAMA_RUNNER") or "orchestrate-runner"], describe)
