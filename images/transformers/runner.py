"""orchestrate runner for Hugging Face transformers + PyTorch on CPU (docs/contract.md).

Reads the CELL job from $ORCHESTRATE_JOB (default /job/job.json), loads the safetensors
model folder once, runs `warmup` untimed and `repetitions` timed greedy generations with a
KV cache, and writes <output_dir>/result.json atomically. On any error: the reason on
stderr, exit status 1, no result file. Speaks only the contract: no orchestrator imports.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json),
ORCHESTRATE_VERBOSE=1 (transformers' own warnings; default: errors only).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time

ENGINE_NAME = "transformers"
# A thread counts as a compute thread when it ran at least this share of the busiest
# thread's CPU time over the timed repetitions (the same rule as the llama.cpp runner).
ACTIVE_SHARE = 0.10
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# engine.options.omp_wait_policy: "default" leaves OMP_WAIT_POLICY as the image has it
# (unset: libgomp spins a while at barriers, then sleeps); "active"/"passive" set it.
OMP_WAIT_POLICIES = ("default", "active", "passive")
KNOWN_OPTIONS = {"omp_wait_policy"}


class JobError(Exception):
    """The job cannot be run as given."""


def log(message: str) -> None:
    print(f"transformers-runner: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ job

def read_job(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            job = json.load(handle)
    except (OSError, ValueError) as exc:
        raise JobError(f"cannot read job {path}: {exc}") from exc
    if not isinstance(job, dict):
        raise JobError("job is not a JSON object")

    def need(obj: dict, key: str, kind, where: str = ""):
        if key not in obj or not isinstance(obj[key], kind) or isinstance(obj[key], bool) and kind is not bool:
            raise JobError(f"job: {where}{key} missing or not {getattr(kind, '__name__', kind)}")
        return obj[key]

    need(job, "cell_id", str)
    need(job, "output_dir", str)
    if need(job, "threads", int) < 1:
        raise JobError("job: threads must be >= 1")
    if need(job, "warmup", int) < 0:
        raise JobError("job: warmup must be >= 0")
    if need(job, "repetitions", int) < 1:
        raise JobError("job: repetitions must be >= 1")
    model = need(job, "model", dict)
    need(model, "path", str, "model.")
    need(model, "format", str, "model.")
    workload = need(job, "workload", dict)
    if not need(workload, "prompt", str, "workload."):
        raise JobError("job: workload.prompt is empty")
    if need(workload, "gen_tokens", int, "workload.") < 2:
        raise JobError("job: workload.gen_tokens must be >= 2")
    prompt_tokens = workload.get("prompt_tokens")
    if prompt_tokens is not None and (not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool)
                                      or prompt_tokens < 2):
        raise JobError("job: workload.prompt_tokens must be null or an integer >= 2")
    options = job.get("engine", {}).get("options", {}) if isinstance(job.get("engine"), dict) else {}
    if not isinstance(options, dict):
        raise JobError("job: engine.options is not an object")
    policy = options.get("omp_wait_policy", "default")
    if policy not in OMP_WAIT_POLICIES:
        raise JobError(f"job: engine.options.omp_wait_policy must be one of {', '.join(OMP_WAIT_POLICIES)}")
    for key in options:
        if key not in KNOWN_OPTIONS:
            log(f"warning: ignoring unknown engine option {key!r}")
    job["_omp_wait_policy"] = policy
    if model["format"] != "safetensors":
        raise JobError(f"model format {model['format']!r} is not supported (this runner reads 'safetensors')")
    return job


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


def task_cpu_times() -> tuple[dict[int, float], str]:
    """tid -> seconds of CPU the thread has run so far, for every thread of this process.

    /proc/self/task/<tid>/schedstat (first field, ns); falls back to utime+stime of
    /proc/self/task/<tid>/stat (clock ticks) when schedstat is absent.
    """
    times: dict[int, float] = {}
    sources = set()
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return times, "none"
    for name in tids:
        base = f"/proc/self/task/{name}"
        try:
            with open(f"{base}/schedstat", encoding="ascii") as handle:
                times[int(name)] = int(handle.read().split()[0]) / 1e9
                sources.add("/proc/self/task/*/schedstat")
                continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"{base}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            # after "pid (comm)": state is fields[0]; utime, stime are fields 14, 15 overall
            times[int(name)] = (int(fields[11]) + int(fields[12])) / ticks
            sources.add("/proc/self/task/*/stat")
        except (OSError, ValueError, IndexError):
            pass  # the thread exited meanwhile
    return times, "+".join(sorted(sources)) or "none"


def thread_names() -> dict[int, str]:
    names = {}
    for name in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{name}/comm", encoding="utf-8", errors="replace") as handle:
                names[int(name)] = handle.read().strip()
        except OSError:
            pass
    return names


def vm_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    value, unit = line.split()[1:3]
                    if unit == "kB":
                        return int(value) * 1024
    except (OSError, ValueError):
        pass
    return None


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

    ids = encode(text)
    repeats = 1
    if prompt_tokens is not None:
        while len(ids) < prompt_tokens:
            repeats += 1
            longer = encode(" ".join([text] * repeats))
            if len(longer) <= len(ids):
                raise JobError("prompt does not grow when repeated")
            ids = longer
        ids = ids[:prompt_tokens]
    if not ids:
        raise JobError("the prompt tokenizes to no ids")
    info = {"add_bos_token_config": add_bos, "bos_token_id": bos,
            "bos_first": bool(bos is not None and ids[0] == bos),
            "adjusted": sorted(adjusted), "prompt_text_repeats": repeats}
    for note in sorted(adjusted):
        log(f"warning: prompt: {note}")
    return ids, info


def generate(torch, model, cache_factory, prompt_ids: list[int], gen_tokens: int) -> dict:
    """One greedy generation from an empty KV cache, timed per token with perf_counter."""
    clock = time.perf_counter
    inputs = torch.tensor([prompt_ids], dtype=torch.long)
    cache = cache_factory()
    tokens: list[int] = []
    itl: list[float] = []
    with torch.inference_mode():
        t0 = clock()
        out = model(input_ids=inputs, past_key_values=cache, use_cache=True, logits_to_keep=1)
        t_prefill = clock()
        token = int(torch.argmax(out.logits[0, -1]))
        t_first = t_prev = clock()
        tokens.append(token)
        cache = out.past_key_values
        while len(tokens) < gen_tokens:  # end-of-sequence is ignored on purpose
            out = model(input_ids=torch.tensor([[token]], dtype=torch.long), past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
            token = int(torch.argmax(out.logits[0, -1]))
            t = clock()
            itl.append(t - t_prev)
            t_prev = t
            tokens.append(token)
            cache = out.past_key_values
    cache_len = cache.get_seq_length() if hasattr(cache, "get_seq_length") else None
    if len(tokens) != gen_tokens or len(itl) != gen_tokens - 1:
        raise RuntimeError(f"internal: generated {len(tokens)} tokens, wanted {gen_tokens}")
    return {
        "prompt_tokens": len(prompt_ids),
        "generated_tokens": len(tokens),
        "prefill_s": t_prefill - t0,
        "decode_s": sum(itl),
        "ttft_s": t_first - t0,
        "inter_token_latencies_s": itl,
        "token_ids": tokens,
        "cache_length": cache_len,
    }


def run(job: dict) -> dict:
    threads = job["threads"]
    model_dir = job["model"]["path"]
    if not os.path.isdir(model_dir):  # before the slow imports: fail fast
        raise JobError(f"model.path {model_dir} is not a directory")
    affinity = configure_thread_env(threads, job["_omp_wait_policy"])

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

    tokenizer_path = job["model"].get("tokenizer") or model_dir

    # ---- load (timed): tokenizer + model
    t_load = time.perf_counter()
    if os.path.isdir(tokenizer_path):
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
        raise JobError(f"tokenizer {tokenizer_path}: neither a folder nor a tokenizer.json file")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    model.eval()
    load_time_s = time.perf_counter() - t_load
    if next(model.parameters()).dtype != torch.float32:
        raise RuntimeError(f"model loaded as {next(model.parameters()).dtype}, wanted float32")

    workload = job["workload"]
    prompt_ids, prompt_info = make_prompt(tokenizer, workload["prompt"], workload.get("prompt_tokens"),
                                          configured_add_bos(tokenizer_path))
    gen_tokens = workload["gen_tokens"]
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and len(prompt_ids) + gen_tokens > max_pos:
        log(f"warning: {len(prompt_ids)} prompt + {gen_tokens} generated tokens exceed the model's "
            f"max_position_embeddings ({max_pos})")

    # ---- warm-up, then timed repetitions; thread CPU times around the timed ones
    for _ in range(job["warmup"]):
        generate(torch, model, cache_factory, prompt_ids, gen_tokens)
    tasks_before, _ = task_cpu_times()
    gc_was_enabled = gc.isenabled()
    reps = []
    os_threads_max = 0
    for index in range(job["repetitions"]):
        gc.collect()
        gc.disable()  # no collector pauses inside a timed repetition
        try:
            r = generate(torch, model, cache_factory, prompt_ids, gen_tokens)
        finally:
            if gc_was_enabled:
                gc.enable()
        os_threads_max = max(os_threads_max, len(os.listdir("/proc/self/task")))
        reps.append((index, r))
    tasks_after, task_source = task_cpu_times()
    names = thread_names()

    # ---- threads actually used: threads that did a comparable share of the work
    deltas = {tid: cpu - tasks_before.get(tid, 0.0) for tid, cpu in tasks_after.items()}
    busiest = max(deltas.values(), default=0.0)
    active = sorted(tid for tid, d in deltas.items() if busiest > 0 and d >= ACTIVE_SHARE * busiest)
    torch_threads = torch.get_num_threads()
    used = len(active) if active else torch_threads
    how = (f"threads that ran >= {int(ACTIVE_SHARE * 100)}% of the busiest thread's CPU time over the "
           f"timed repetitions ({task_source} deltas): {len(active)} of {len(deltas)} OS threads; "
           f"torch.get_num_threads()={torch_threads}, torch.get_num_interop_threads()="
           f"{torch.get_num_interop_threads()} (set by torch.set_num_threads/set_num_interop_threads, "
           f"{'/'.join(THREAD_ENV)}={threads} before importing torch)")
    if not active:
        how += "; no per-thread CPU times readable, so 'used' is torch.get_num_threads()"
    if torch_threads != threads:
        log(f"warning: torch.get_num_threads()={torch_threads}, job requested {threads}")

    repetitions = []
    for index, r in reps:
        repetitions.append({
            "index": index,
            "prompt_tokens": r["prompt_tokens"],
            "generated_tokens": r["generated_tokens"],
            "prefill_s": r["prefill_s"],
            "decode_s": r["decode_s"],
            "ttft_s": r["ttft_s"],
            "inter_token_latencies_s": r["inter_token_latencies_s"],
            "token_ids": r["token_ids"],
        })

    peak = vm_hwm_bytes()
    result = {
        "schema_version": 1,
        "cell_id": job["cell_id"],
        "engine": {
            "name": ENGINE_NAME,
            "version": f"{transformers.__version__}+torch{torch.__version__.split('+')[0]}",
            "build": build_info(torch, transformers, tokenizers, safetensors, numpy),
        },
        "measurement_boundary": "in-process",
        "threads": {"requested": threads, "used": used, "how": how},
        "load_time_s": load_time_s,
        "peak_rss_bytes": peak,
        "prompt_token_ids": prompt_ids,
        "repetitions": repetitions,
        "extra": {
            "timing": {
                "clock": "time.perf_counter (monotonic), in the runner's Python process",
                "import_s": import_s,
                "import_s_how": "import of numpy, safetensors, tokenizers, torch, transformers (not part of load_time_s)",
                "load_time_s": "AutoTokenizer.from_pretrained + AutoModelForCausalLM.from_pretrained(dtype=float32) + eval()",
                "prefill_s": "model(input_ids=<prompt>, past_key_values=<empty cache>, logits_to_keep=1) under torch.inference_mode()",
                "ttft_s": "prefill_s + argmax of the last position's logits converted to a Python int",
                "inter_token_latencies_s": "per token: model(<previous token>, past_key_values) + argmax -> int",
                "gc": "gc.collect() before and gc.disable() during each timed repetition",
            },
            "model": {
                "class": type(model).__name__,
                "dtype": str(next(model.parameters()).dtype),
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "parameters": sum(p.numel() for p in model.parameters()),
                "max_position_embeddings": max_pos,
                "kv_cache": cache_kind,
                "kv_cache_length_after": reps[-1][1]["cache_length"],
                "tokenizer_class": type(tokenizer).__name__,
            },
            "prompt": prompt_info,
            "threads": {
                "torch_get_num_threads": torch_threads,
                "torch_get_num_interop_threads": torch.get_num_interop_threads(),
                "set_num_interop_threads_error": interop_error,
                "os_threads_after_timed_repetitions_max": os_threads_max,
                "per_thread_cpu_s_timed": [
                    {"tid": tid, "name": names.get(tid, "?"), "cpu_s": round(d, 6), "active": tid in active}
                    for tid, d in sorted(deltas.items(), key=lambda kv: -kv[1])
                ],
                **affinity,
            },
        },
        "unmeasured": {} if peak is not None else {"peak_rss_bytes": "VmHWM not readable in /proc/self/status"},
    }
    return result


def write_atomically(output_dir: str, result: dict) -> str:
    final = os.path.join(output_dir, "result.json")
    fd, tmp = tempfile.mkstemp(prefix=".result.", suffix=".tmp", dir=output_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def main() -> int:
    job_path = os.environ.get("ORCHESTRATE_JOB") or "/job/job.json"
    try:
        job = read_job(job_path)
        result = run(job)
        path = write_atomically(job["output_dir"], result)
    except JobError as exc:
        log(f"error: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - any failure: reason on stderr, no result
        import traceback
        traceback.print_exc(file=sys.stderr)
        log(f"error: {type(exc).__name__}: {exc}")
        return 1
    rates = [(r["generated_tokens"] - 1) / r["decode_s"] for r in result["repetitions"] if r["decode_s"] > 0]
    rates.sort()
    median = rates[len(rates) // 2] if rates else float("nan")
    log(f"wrote {path}: threads used {result['threads']['used']}, decode {median:.1f} tok/s (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
