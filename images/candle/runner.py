"""orchestrate runner for candle: the runner kit does the contract, orchestrate-candle-runner (Rust) times candle.

The Rust half (src/) loads the model (safetensors through models::llama, GGUF through
models::quantized_llama) and its tokenizer, and times prefill + greedy decode (or perplexity
windows) itself; the kit (runnerkit.native) checks the job, shapes the prompt, reads
per-thread CPU and VmHWM of the Rust process and assembles the RESULT. This file adds what
only candle's runner says: its build, its threads as rayon sees them, and the notes on how
it loads, tokenizes and times.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_CANDLE_RUNNER (default orchestrate-candle-runner).
"""

from __future__ import annotations

import os

from runnerkit import job as jobs
from runnerkit import native, proc, result

ENGINE_NAME = "candle"

GENERATION_TIMING = (
    "std::time::Instant per repetition after a fresh KV cache (untimed): prefill_s = forward over the whole prompt "
    "+ copy of the last position's logits; ttft_s = prefill_s + greedy argmax; each inter-token latency = input "
    "tensor + one cached forward + logits copy + argmax; decode_s = their sum. candle CPU ops are synchronous.")
PERPLEXITY_TIMING = (
    "std::time::Instant per window, summed per repetition: the window's forward passes (candle CPU ops are "
    "synchronous, logits copied out) and the nll of its scored positions; making each window's empty KV cache "
    "(untimed, as for generation) is left out. Warmup: the first window only, untimed.")
EVALUATION_HOW = (
    "each window from an empty KV cache: ids[begin..first_scored] in one forward pass (its last position's logits "
    "score first_scored), then each following id alone through the KV cache, its logits scoring the next position "
    "(candle's llama/quantized_llama return only the last position's logits). nll = logsumexp(z) - z[target] in f64 "
    "from the f32 logits (max-shifted); mean_nll = sum / scored_tokens; perplexity = exp(mean_nll) of the first "
    "repetition")


def engine_info(loaded: dict) -> dict:
    build = dict(loaded["engine"]["build"])
    build["runtime_cpu_simd_flags"] = proc.cpu_flags(("avx", "sse", "amx", "fma", "f16c"))
    return {"name": ENGINE_NAME, "version": loaded["engine"]["version"], "build": build}


def threads(job: jobs.Job, measured: native.Measured) -> dict:
    prepared = measured.prepared
    return result.threads(
        job, measured.window, prepared["threads_reported"],
        f"rayon::current_num_threads()={prepared['rayon_current_num_threads']} of the global pool the runner built "
        f"with num_threads={job.threads} (RAYON_NUM_THREADS={prepared['rayon_num_threads_env']}, which candle's gemm "
        f"parallelism reads); the work runs on the pool's workers while the main thread blocks")


def threads_extra(measured: native.Measured) -> dict:
    window, prepared = measured.window, measured.prepared
    busy = sum(t["cpu_s"] for t in window.per_thread)
    return {"rayon_current_num_threads": prepared["rayon_current_num_threads"],
            "ran_on_rayon_worker": prepared["ran_on_rayon_worker"],
            "candle_get_num_threads": prepared["candle_get_num_threads"],
            "mean_threads_on_cpu": busy / window.wall_s if window.wall_s > 0 else None,
            "mean_threads_on_cpu_how": "sum of the threads' CPU time over the timed repetitions / their wall time "
                                       "(as the runner kit saw it, around the timed request)",
            "tasks_in_process": window.threads_seen, "window_s": window.wall_s}


def generation_extra(job: jobs.Job, engine: native.Native, measured: native.Measured) -> dict:
    loaded, ids = measured.loaded, measured.prompt_ids
    tokenizer = loaded["tokenizer"]
    return {
        "timing": GENERATION_TIMING,
        "load": {"model_s": loaded["model_s"], "tokenizer_s": tokenizer["load_s"],
                 "how": "load_time_s = model load (weights read/mapped, tensors built) + tokenizer.json load"},
        "model": loaded["model"], "format": job.model_format, "context_length": loaded["model_context_length"],
        "positions_used": len(ids) + job.gen_tokens - 1,
        "tokenizer": {"path": tokenizer["path"], "crate": "tokenizers", "prompt": {
            "text_repeats": measured.repeats, "add_bos_token": tokenizer["add_bos_token"],
            "add_bos_token_source": tokenizer["add_bos_token_source"], "bos_id": tokenizer["bos_id"],
            "bos_first": tokenizer["bos_id"] is not None and ids[0] == tokenizer["bos_id"],
            "bos_action": engine.tokenized.get("bos_action")}},
    }


def perplexity_extra(job: jobs.Job, measured: native.Measured) -> dict:
    loaded, wins, ids_file = measured.loaded, measured.windows, measured.ids_file
    return {
        "timing": PERPLEXITY_TIMING,
        "load": {"model_s": loaded["model_s"], "how": "load_time_s = model load (weights read/mapped, tensors "
                                                      "built); no tokenizer is loaded: the ids come tokenized in "
                                                      "the ids file"},
        "model": loaded["model"], "format": job.model_format, "context_length": loaded["model_context_length"],
        "vocab_size": loaded["vocab_size"],
        "evaluation": {"ids_path": ids_file["path"], "ids_file_bytes": ids_file["bytes"],
                       "ids_file_text": ids_file["text"], "ids_file_tokenizer": ids_file["tokenizer"],
                       "bos": "none added: the ids are scored as given",
                       "forward_passes_per_evaluation": sum(end - first for _, end, first in wins),
                       "largest_window": max(end - start for start, end, _ in wins), "how": EVALUATION_HOW},
    }


def describe(job: jobs.Job, engine: native.Native, measured: native.Measured) -> tuple[dict, dict, dict]:
    """The RESULT's engine, threads and extra (runnerkit.native.run)."""
    extra = perplexity_extra(job, measured) if job.perplexity else generation_extra(job, engine, measured)
    extra["threads"] = threads_extra(measured)
    extra["peak_rss"] = "VmHWM from /proc/<pid>/status of the Rust runner after the timed repetitions"
    return engine_info(measured.loaded), threads(job, measured), extra


if __name__ == "__main__":
    native.serve(ENGINE_NAME, [os.environ.get("ORCHESTRATE_CANDLE_RUNNER") or "orchestrate-candle-runner"], describe)
