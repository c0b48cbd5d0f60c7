"""orchestrate runner for Hugging Face transformers + PyTorch on CPU (docs/contract.md).

Reads the CELL job from $ORCHESTRATE_JOB (default /job/job.json), loads the safetensors
model folder once, runs `warmup` untimed and `repetitions` timed greedy generations with a
KV cache, and writes <output_dir>/result.json atomically. On any error: the reason on
stderr, exit status 1, no result file. Speaks only the contract: no orchestrator imports.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json),
ORCHESTRATE_VERBOSE=1 (transformers' own warnings; default: errors only).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import sys
import time

from runnerkit import job as jobs
from runnerkit import main, perplexity, proc, prompt, reference, result, timing

ENGINE_NAME = "transformers"
GENERATION_TIMING = {
    "load_time_s": "AutoTokenizer.from_pretrained + AutoModelForCausalLM.from_pretrained(dtype=float32) + eval()",
    "prefill_s": "model(input_ids=<prompt>, past_key_values=<empty cache>, logits_to_keep=1) under "
                 "torch.inference_mode()",
    "ttft_s": "prefill_s + argmax of the last position's logits converted to a Python int",
    "inter_token_latencies_s": "per token: model(<previous token>, past_key_values) + argmax -> int",
}
PERPLEXITY_TIMING = {
    "load_time_s": "AutoModelForCausalLM.from_pretrained(dtype=float32) + eval() (no tokenizer: the text comes "
                   "tokenized)",
    "time_s": "one evaluation of the whole text (runnerkit.perplexity): per window, model(input_ids=<window>, "
              "use_cache=False, logits_to_keep=<scored + 1>) under torch.inference_mode() from no cache, the "
              "scored rows as float32 numpy, scored in float64",
    "warmup": "the first window only, untimed",
}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
log = main.log


# ------------------------------------------------------------------------------ threads

def configure_thread_env(threads: int, wait_policy: str) -> dict:
    """Before torch is imported: size OpenMP/MKL pools from the job, not the host.

    libgomp and MKL read these when torch first starts a parallel region; without them
    they may size pools from the host's core count rather than the container's cpuset.
    An inherited affinity list (GOMP_CPU_AFFINITY, KMP_AFFINITY) may name cores outside
    the cpuset, so it is dropped: the cpuset already places the process.
    """
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = wait_policy.upper()
    dropped = {}
    for name in ("GOMP_CPU_AFFINITY", "KMP_AFFINITY", "OMP_PLACES", "OMP_PROC_BIND"):
        if name in os.environ:
            dropped[name] = os.environ.pop(name)
    try:
        allowed = sorted(os.sched_getaffinity(0))
        affinity_error = None
    except (AttributeError, OSError) as exc:
        allowed = None
        affinity_error = f"sched_getaffinity failed: {exc}"
        log(f"warning: {affinity_error}")
    if allowed is not None and threads > len(allowed):
        log(f"warning: {threads} threads requested but only {len(allowed)} CPU(s) allowed {allowed}: "
            "threads will share cores")
    return {
        "env_set": {name: os.environ[name] for name in THREAD_ENV},
        "omp_wait_policy_option": wait_policy,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "env_dropped": dropped,
        "allowed_cpus": allowed,
        "affinity_error": affinity_error,
        "os_cpu_count": os.cpu_count(),
    }


# ------------------------------------------------------------------------------ engine

def parallel_summary(torch) -> dict:
    """torch.__config__.parallel_info(): the raw text, its "name : value" settings and the
    library lines (OpenMP, MKL, oneDNN versions). Read on the runner's main thread."""
    text = torch.__config__.parallel_info()
    settings: dict[str, str] = {}
    libraries: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if " : " in stripped:
            key, value = stripped.split(" : ", 1)
            settings[key.strip()] = value.strip()
        elif stripped.startswith("ATen parallel backend:"):
            settings["ATen parallel backend"] = stripped.split(":", 1)[1].strip()
        elif not line[0].isspace() and not stripped.endswith(":"):
            libraries.append(stripped)
    return {"raw": text, "settings": settings, "libraries": libraries}


def build_info(torch, transformers, tokenizers, safetensors, numpy) -> dict:
    path = os.environ.get("ORCHESTRATE_BUILD_INFO", "/opt/engine/build.json")
    try:
        with open(path, encoding="utf-8") as handle:
            image_build = json.load(handle)
    except (OSError, ValueError) as exc:
        image_build = {"error": f"cannot read {path}: {exc}"}
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        capability = f"unavailable: {exc}"
    return {
        "source": "PyPI wheels, pinned with hashes (images/transformers/requirements*.txt)",
        "torch_version": torch.__version__,
        "torch_git_version": getattr(torch.version, "git_version", None),
        "torch_cuda_build": torch.version.cuda,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "safetensors_version": safetensors.__version__,
        "numpy_version": numpy.__version__,
        "python": sys.version.split()[0],
        "cpu_capability": capability,
        "cpu_path": {"how": "torch.backends.cpu.get_cpu_capability(): the instruction set PyTorch's ATen kernels "
                            "dispatch to at run time on this CPU (ATEN_CPU_CAPABILITY overrides it)",
                     "summary": f"PyTorch ATen CPU capability {capability} (runtime dispatch)"},
        "mkl_available": bool(torch.backends.mkl.is_available()),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "openmp_available": bool(torch.backends.openmp.is_available()),
        "parallel_info": parallel_summary(torch),
        "config_show": torch.__config__.show(),
        "image": image_build,
    }


def configured_add_bos(tokenizer_path: str) -> bool | None:
    """add_bos_token from tokenizer_config.json next to the tokenizer, None when not stated."""
    folder = tokenizer_path if os.path.isdir(tokenizer_path) else os.path.dirname(tokenizer_path)
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as handle:
            value = json.load(handle).get("add_bos_token")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def make_prompt(tokenizer, text: str, prompt_tokens: int | None,
                add_bos: bool | None) -> tuple[list[int], dict]:
    """Token ids as the tokenizer is configured to add special tokens (contract, step 2).

    BOS first exactly when tokenizer_config.json's add_bos_token says so; when the file
    does not state it, whatever tokenizer(text, add_special_tokens=True) gives. With
    prompt_tokens: the text repeated (joined by a space) until long enough, then cut.
    """
    bos = tokenizer.bos_token_id
    adjusted = set()

    def encode(s: str) -> list[int]:
        ids = list(tokenizer(s, add_special_tokens=True)["input_ids"])
        if add_bos is True and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
            adjusted.add("prepended BOS (add_bos_token true, the tokenizer did not add it)")
        elif add_bos is False and bos is not None and ids and ids[0] == bos:
            ids = ids[1:]
            adjusted.add("removed BOS (add_bos_token false, the tokenizer added it)")
        return ids

    ids, repeats = prompt.shape(encode, text, prompt_tokens)
    info = {"add_bos_token_config": add_bos, "bos_token_id": bos,
            "bos_first": bool(bos is not None and ids[0] == bos),
            "adjusted": sorted(adjusted), "prompt_text_repeats": repeats}
    for note in sorted(adjusted):
        log(f"warning: prompt: {note}")
    return ids, info


def generate(index: int, torch, model, cache_factory, prompt_ids: list[int], gen_tokens: int) -> tuple[dict, int]:
    """One greedy generation from an empty KV cache, timed per token; (repetition, cache length)."""
    state = {"cache": cache_factory()}

    def forward(ids: list[int]):
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), past_key_values=state["cache"],
                    use_cache=True, logits_to_keep=1)
        state["cache"] = out.past_key_values
        return out

    with torch.inference_mode():
        rep = timing.repetition(index, prompt_ids, gen_tokens, lambda: forward(prompt_ids),
                                lambda out: torch.argmax(out.logits[0, -1]), lambda token: forward([token]))
    cache = state["cache"]
    return rep, cache.get_seq_length() if hasattr(cache, "get_seq_length") else None


GENERATE_CALL = ("model.generate(input_ids=<prompt>, attention_mask=<ones>, generation_config=<the model's own, with "
                 "max_new_tokens=gen_tokens, min_new_tokens=None, do_sample=False, num_beams=1, "
                 "eos_token_id=None>, streamer=<a clock read as each token arrives>) under torch.inference_mode()")


def reference_generate(index: int, torch, model, prompt_ids: list[int], gen_tokens: int) -> dict:
    """One repetition of transformers' own generation API, the path its users call (ENGINE option
    ``reference``): greedy, with its default KV cache and its own loop; end-of-sequence does not stop
    it (as it does not stop ours), so both produce gen_tokens ids."""
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens, config.min_new_tokens, config.max_length = gen_tokens, None, None
    config.do_sample, config.num_beams, config.eos_token_id = False, 1, None
    for sampling in ("temperature", "top_p", "top_k"):  # unused when greedy; unset, so generate does not warn
        setattr(config, sampling, None)
    if config.pad_token_id is None:
        config.pad_token_id = 0  # never used with one sequence and no end-of-sequence; generate wants one
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    clock = reference.TokenClock()
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=clock)
    return reference.streamed(index, len(prompt_ids), clock.start, clock.stamps, clock.tokens)


def window_logits_function(torch, model):
    """perplexity's window_logits(window_ids, first, count): one forward pass over the whole window
    (positions 0..len-1, no cache), the float32 logits rows of positions first .. first+count-1 as numpy.

    The scored rows end one before the window's last position, so logits_to_keep=count+1 (the
    last count+1 positions) holds them all; the output layer runs for those positions only.
    """
    def window_logits(window_ids: list[int], first: int, count: int):
        n = len(window_ids)
        if first + count + 1 != n:
            raise RuntimeError(f"window of {n} ids, rows {first}..{first + count - 1}: not the window's last rows")
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([window_ids], dtype=torch.long), use_cache=False,
                        logits_to_keep=count + 1)
            logits = out.logits
            if logits.shape[1] != count + 1:
                raise RuntimeError(f"logits of shape {tuple(logits.shape)}, expected {count + 1} positions")
            return logits[0, :count].float().numpy()

    return window_logits


def run(job: jobs.Job) -> dict:
    threads = job.threads
    model_dir = job.model_path
    if job.model_format != "safetensors":
        raise jobs.JobError(f"model format {job.model_format!r} is not supported (this runner reads 'safetensors')")
    if not os.path.isdir(model_dir):  # before the slow imports: fail fast
        raise jobs.JobError(f"model.path {model_dir} is not a directory")
    if job.perplexity:  # the ids file's sha256, windows and context, before the slow imports too
        ids = perplexity.load_ids(job)
        wins = perplexity.windows(len(ids), job.context, job.stride)
        try:
            with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as handle:
                config = json.load(handle)
            perplexity.check_context(job.context, config.get("max_position_embeddings"), config.get("vocab_size"), ids)
        except (OSError, ValueError, AttributeError):
            pass  # checked again against the loaded model's config
    affinity = configure_thread_env(threads, jobs.option(job, "omp_wait_policy"))

    t_import = time.perf_counter()
    import numpy
    import safetensors
    import tokenizers
    import torch

    # Before any parallel work: intra-op pool = job.threads, inter-op pool = 1.
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
        interop_error = None
    except RuntimeError as exc:
        interop_error = str(exc)
        log(f"warning: set_num_interop_threads(1) failed: {exc}")

    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    import_s = time.perf_counter() - t_import
    if os.environ.get("ORCHESTRATE_VERBOSE") != "1":
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    try:
        from transformers import DynamicCache

        def cache_factory():
            return DynamicCache()
        cache_kind = "transformers.DynamicCache (new, empty, per repetition)"
    except ImportError:
        def cache_factory():
            return None
        cache_kind = "past_key_values=None (model-created cache per repetition)"

    tokenizer_path = job.tokenizer or model_dir

    # ---- load (timed): tokenizer + model (a perplexity job: the model only)
    t_load = time.perf_counter()
    tokenizer = None
    if job.perplexity:
        pass  # the text comes tokenized (the ids file): no tokenizer
    elif os.path.isdir(tokenizer_path):
        # Without tokenizer.json the folder's tokenizer is SentencePiece's tokenizer.model
        # (modelmaker then names the slow LlamaTokenizer): load that, not a fast conversion.
        use_fast = os.path.exists(os.path.join(tokenizer_path, "tokenizer.json"))
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True, use_fast=use_fast)
        except Exception as exc:  # noqa: BLE001 - fall back to the plain fast tokenizer
            if not use_fast:
                raise
            log(f"AutoTokenizer failed ({exc}); trying PreTrainedTokenizerFast")
            tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_path, local_files_only=True)
    elif tokenizer_path.endswith(".json"):
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=tokenizer_path)
    else:
        raise jobs.JobError(f"tokenizer {tokenizer_path}: neither a folder nor a tokenizer.json file")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    model.eval()
    load_time_s = time.perf_counter() - t_load
    if next(model.parameters()).dtype != torch.float32:
        raise RuntimeError(f"model loaded as {next(model.parameters()).dtype}, wanted float32")

    max_pos = getattr(model.config, "max_position_embeddings", None)
    gc_was_enabled = gc.isenabled()

    @contextlib.contextmanager
    def no_gc():
        gc.collect()
        gc.disable()  # no collector pauses inside a timed repetition
        try:
            yield
        finally:
            if gc_was_enabled:
                gc.enable()

    cache_length = None
    if job.perplexity:
        perplexity.check_context(job.context, max_pos, getattr(model.config, "vocab_size", None), ids)
        log(f"perplexity: {len(ids)} ids, context {job.context}, stride {job.stride}: {len(wins)} windows")
        window_logits = window_logits_function(torch, model)
        # ---- warm-up (the first window), then timed evaluations; per-thread CPU around the timed ones
        perplexity.warmup(ids, wins, window_logits, job.warmup)
        with proc.cpu_window() as window:
            repetitions = perplexity.repetitions(ids, wins, window_logits, job.repetitions, around=no_gc)
        log(perplexity.describe(repetitions))
        if jobs.option(job, "reference"):
            log("note: engine option reference applies to generation only; ignored for perplexity")
    else:
        prompt_ids, prompt_info = make_prompt(tokenizer, job.prompt, job.prompt_tokens,
                                              configured_add_bos(tokenizer_path))
        gen_tokens = job.gen_tokens
        prompt.check_context(len(prompt_ids), gen_tokens, max_pos)

        # ---- warm-up, then timed repetitions; per-thread CPU times around the timed ones
        for index in range(job.warmup):
            generate(index, torch, model, cache_factory, prompt_ids, gen_tokens)
        repetitions = []
        with proc.cpu_window() as window:
            for index in range(job.repetitions):
                with no_gc():
                    rep, cache_length = generate(index, torch, model, cache_factory, prompt_ids, gen_tokens)
                repetitions.append(rep)
        if jobs.option(job, "reference"):
            # ABA: ours (above), transformers' generate() (B), ours again (A), so drift falls on both.
            timed = []
            for index in range(job.repetitions):
                with no_gc():
                    timed.append(reference_generate(index, torch, model, prompt_ids, gen_tokens))
            again = []
            for index in range(job.repetitions):
                with no_gc():
                    again.append(generate(index, torch, model, cache_factory, prompt_ids, gen_tokens)[0])
            reference_block = reference.block(
                "transformers generate()", "transformers' own generation API in the same process, on the same "
                "prompt ids, model and threads, after our timed repetitions and before as many again (untimed "
                "warm-up: ours only)", GENERATE_CALL, repetitions, timed, again)
            if not reference_block["same_tokens"]:
                log(f"warning: generate() chose other tokens than our loop from position "
                    f"{reference_block['first_difference']}")
    torch_threads = torch.get_num_threads()
    threads_figures = result.threads(
        job, window, torch_threads,
        f"torch.get_num_threads()={torch_threads}, torch.get_num_interop_threads()="
        f"{torch.get_num_interop_threads()} (set by torch.set_num_threads/set_num_interop_threads, "
        f"{'/'.join(THREAD_ENV)}={threads} before importing torch)")
    if torch_threads != threads:
        log(f"warning: torch.get_num_threads()={torch_threads}, job requested {threads}")

    engine = {"name": ENGINE_NAME, "version": f"{transformers.__version__}+torch{torch.__version__.split('+')[0]}",
              "build": build_info(torch, transformers, tokenizers, safetensors, numpy)}
    extra = {
        "timing": {
            "clock": "time.perf_counter (monotonic), in the runner's Python process (runnerkit.timing)",
            "import_s": import_s,
            "import_s_how": "import of numpy, safetensors, tokenizers, torch, transformers (not part of load_time_s)",
            **(PERPLEXITY_TIMING if job.perplexity else GENERATION_TIMING),
            "gc": "gc.collect() before and gc.disable() during each timed repetition",
        },
        "model": {
            "class": type(model).__name__,
            "dtype": str(next(model.parameters()).dtype),
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "parameters": sum(p.numel() for p in model.parameters()),
            "max_position_embeddings": max_pos,
            "kv_cache": cache_kind,
            "kv_cache_length_after": cache_length,
            "tokenizer_class": type(tokenizer).__name__ if tokenizer is not None else None,
        },
        "threads": {
            "torch_get_num_threads": torch_threads,
            "torch_get_num_interop_threads": torch.get_num_interop_threads(),
            "set_num_interop_threads_error": interop_error,
            "threads_in_process": window.threads_seen,
            **affinity,
        },
    }
    if job.perplexity:
        extra["perplexity"] = {"window_ranges": [list(w) for w in wins],
                               "window_ranges_how": "[start, end, first scored position] over the text's ids"}
        if jobs.option(job, "reference"):
            extra["reference"] = "not run: generate() has no perplexity mode (the option applies to generation only)"
        return result.perplexity_document(job, engine, threads_figures, load_time_s, proc.vm_hwm_bytes(),
                                          perplexity.result_fields(job, ids, wins, repetitions), repetitions, extra)
    extra["prompt"] = prompt_info
    if jobs.option(job, "reference"):
        extra["reference"] = reference_block
    return result.document(job, engine, threads_figures, load_time_s, proc.vm_hwm_bytes(), prompt_ids,
                           repetitions, extra)


if __name__ == "__main__":
    sys.exit(main.run("transformers-runner", run, kinds=(jobs.GENERATE, jobs.PERPLEXITY)))
