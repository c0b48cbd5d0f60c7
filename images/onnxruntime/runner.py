"""orchestrate runner for ONNX Runtime: one CELL, greedy decoding with a KV cache, timed in process.

Reads the job from $ORCHESTRATE_JOB (default /job/job.json, schemas/cell.schema.json),
writes <output_dir>/result.json (schemas/result.schema.json) through a temporary file and
a rename, and exits 0. On any error it prints the reason on stderr, writes no result and
exits 1. Speaks only the container contract (docs/contract.md): no orchestrator imports.

The model is an ONNX graph with key/value-cache inputs and outputs as written by
modelmaker's export_onnx.py: inputs input_ids, attention_mask, position_ids,
past_key_values.N.key/value; outputs logits, present.N.key/value. The tokenizer is a
Hugging Face tokenizer.json (job.model.tokenizer, else <model dir>/../hf/tokenizer.json),
loaded with the `tokenizers` library.

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json),
ORCHESTRATE_VERBOSE=1 (ONNX Runtime's verbose log).
"""

from __future__ import annotations

import os

# Before numpy is imported: numpy only takes the argmax here, so its BLAS thread pool
# would only add idle threads to the process. The image sets these too.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

ENGINE_NAME = "onnxruntime"
DEFAULT_JOB = "/job/job.json"
DEFAULT_BUILD_INFO = "/opt/engine/build.json"
CELL_ID = re.compile(r"^c-[0-9a-f]{12}$")
PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."
# A thread counts as used when it ran at least this share of the busiest thread's CPU
# time over the timed repetitions (the same rule as the llama.cpp runner).
ACTIVE_SHARE = 0.10
KNOWN_OPTIONS = {
    "allow_spinning": "bool, default false: let intra-op pool workers spin-wait between ops",
    "graph_optimization_level": "one of disable, basic, extended, all (default all)",
}

_START = time.monotonic()


class RunnerError(RuntimeError):
    """A failure with a message meant for the CELL's record (printed on stderr)."""


def log(message: str) -> None:
    print(f"[ort-runner {time.monotonic() - _START:7.3f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- job


def _require(obj: dict, key: str, kind, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise RunnerError(f"job: {where}{key} missing")
    value = obj[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise RunnerError(f"job: {where}{key} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise RunnerError(f"job: {where}{key} has the wrong type: {value!r}")
    return value


def load_job(path: Path) -> dict:
    """Read the job and check what the runner relies on (the orchestrator validated the schema)."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RunnerError(f"cannot read job {path}: {err}") from err
    if not isinstance(job, dict):
        raise RunnerError("job: not a JSON object")
    if job.get("schema_version") != 1:
        raise RunnerError(f"job: schema_version {job.get('schema_version')!r}, this runner speaks 1")
    cell_id = _require(job, "cell_id", str, "")
    if not CELL_ID.match(cell_id):
        raise RunnerError(f"job: cell_id {cell_id!r} does not match {CELL_ID.pattern}")
    model = _require(job, "model", dict, "")
    _require(model, "path", str, "model.")
    if model.get("tokenizer") is not None and not isinstance(model["tokenizer"], str):
        raise RunnerError("job: model.tokenizer must be a string or null")
    if _require(job, "threads", int, "") < 1:
        raise RunnerError("job: threads must be >= 1")
    workload = _require(job, "workload", dict, "")
    if not _require(workload, "prompt", str, "workload."):
        raise RunnerError("job: workload.prompt is empty")
    prompt_tokens = workload.get("prompt_tokens")
    if prompt_tokens is not None and (isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int)
                                      or prompt_tokens < 1):
        raise RunnerError(f"job: workload.prompt_tokens must be null or a positive integer, got {prompt_tokens!r}")
    if _require(workload, "gen_tokens", int, "workload.") < 2:
        raise RunnerError("job: workload.gen_tokens must be >= 2")
    if _require(job, "warmup", int, "") < 0:
        raise RunnerError("job: warmup must be >= 0")
    if _require(job, "repetitions", int, "") < 1:
        raise RunnerError("job: repetitions must be >= 1")
    _require(job, "output_dir", str, "")
    engine = job.get("engine") or {}
    options = engine.get("options", {}) if isinstance(engine, dict) else {}
    if not isinstance(options, dict):
        raise RunnerError("job: engine.options is not an object")
    return job


def parse_options(options: dict) -> dict:
    parsed = {"allow_spinning": False, "graph_optimization_level": "all"}
    for key, value in options.items():
        if key == "allow_spinning":
            if not isinstance(value, bool):
                raise RunnerError("job: engine.options.allow_spinning must be a boolean")
            parsed[key] = value
        elif key == "graph_optimization_level":
            if value not in ("disable", "basic", "extended", "all"):
                raise RunnerError("job: engine.options.graph_optimization_level must be one of "
                                  "disable, basic, extended, all")
            parsed[key] = value
        else:
            log(f"warning: ignoring unknown engine option {key!r} (known: {', '.join(KNOWN_OPTIONS)})")
    return parsed


# ---------------------------------------------------------------------------- prompt


def tokenizer_path(model: dict) -> Path:
    if model.get("tokenizer"):
        return Path(model["tokenizer"])
    # A prepared model folder keeps the ONNX graph in onnx/ beside hf/.
    return Path(model["path"]).parent.parent / "hf" / "tokenizer.json"


def tokenize_prompt(tokenizer, prompt: str, prompt_tokens: int | None, bos_id: int | None) -> tuple[list[int], dict]:
    """Token ids with the tokenizer's special tokens (BOS where the tokenizer adds one, as
    llama_tokenize(add_special=true) does); with prompt_tokens set, repeat the text (joined
    by a space) and cut. A tokenizer that adds no BOS (add_bos_token false) gets none."""

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=True).ids

    ids = encode(prompt)
    repeats = 1
    if prompt_tokens is not None:
        while len(ids) < prompt_tokens:
            repeats += 1
            longer = encode(" ".join([prompt] * repeats))
            if len(longer) <= len(ids):
                raise RunnerError(f"prompt does not grow when repeated ({len(ids)} tokens)")
            ids = longer
        ids = ids[:prompt_tokens]
    info = {"text_repeats": repeats,
            "tokenize": "tokenizers.Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=True)",
            "bos_token_id": bos_id, "starts_with_bos": bool(ids) and bos_id is not None and ids[0] == bos_id}
    return ids, info


# ---------------------------------------------------------------------------- process facts


def read_task_times() -> tuple[dict[int, float], str]:
    """tid -> CPU seconds the thread has run: /proc/self/task/<tid>/schedstat (ns), or
    utime+stime from .../stat (clock ticks) where schedstat is absent."""
    times: dict[int, float] = {}
    sources = set()
    ticks = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc/self/task"):
        base = f"/proc/self/task/{name}"
        try:
            with open(f"{base}/schedstat", encoding="ascii") as handle:
                times[int(name)] = int(handle.read().split()[0]) / 1e9
                sources.add("schedstat")
                continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"{base}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            times[int(name)] = (int(fields[11]) + int(fields[12])) / ticks
            sources.add("stat")
        except (OSError, ValueError, IndexError):
            continue  # the thread exited meanwhile
    source = "/proc/self/task/*/schedstat" if sources == {"schedstat"} else \
        "/proc/self/task/*/stat" if sources == {"stat"} else "/proc/self/task/*/{schedstat,stat}"
    return times, source


def thread_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def read_vmhwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def cpu_facts() -> dict:
    """The host CPU as this container sees it: MLAS picks its kernels from these features at run time."""
    facts = {"cpus_allowed": sorted(os.sched_getaffinity(0)), "os_cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        facts["model_name"] = model.group(1).strip() if model else None
        wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
        present = set(flags.group(1).split()) if flags else set()
        facts["simd_flags"] = [f for f in wanted if f in present]
    except OSError:
        pass
    return facts


@contextlib.contextmanager
def captured_stderr(sink: list[str]):
    """Capture file descriptor 2 (ONNX Runtime's native log) into sink, then echo it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(prefix="ort-log-") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            sink.extend(line for line in text.splitlines() if line.strip())


# ---------------------------------------------------------------------------- model


class Graph:
    """What the runner needs to know about the ONNX graph's inputs and outputs."""

    def __init__(self, session, np) -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        for name in ("input_ids", "attention_mask", "position_ids"):
            if name not in inputs:
                raise RunnerError(f"model has no input {name!r} (inputs: {sorted(inputs)})")
        if not outputs or outputs[0] != "logits":
            raise RunnerError(f"model's first output is not 'logits' (outputs: {outputs})")
        self.output_names = outputs
        self.past_names = [n for n in inputs if n.startswith(PAST_PREFIX)]
        if not self.past_names:
            raise RunnerError("model has no past_key_values.* inputs: a KV-cache export is required")
        # present.N.key feeds past_key_values.N.key of the next call.
        self.feedback: list[tuple[int, str]] = []
        for index, name in enumerate(outputs):
            if name.startswith(PRESENT_PREFIX):
                past = PAST_PREFIX + name[len(PRESENT_PREFIX):]
                if past not in inputs:
                    raise RunnerError(f"output {name} has no matching input {past}")
                self.feedback.append((index, past))
        if sorted(p for _, p in self.feedback) != sorted(self.past_names):
            raise RunnerError("past_key_values.* inputs and present.* outputs do not pair up")
        self.empty_past = {}
        shapes = {}
        for name in self.past_names:
            meta = inputs[name]
            if meta.type != "tensor(float)":
                raise RunnerError(f"{name} is {meta.type}, this runner feeds float32")
            shape = list(meta.shape)
            if len(shape) != 4 or not all(isinstance(d, int) for d in (shape[1], shape[3])):
                raise RunnerError(f"{name} has shape {shape}; expected [batch, kv_heads, past, head_dim]")
            self.empty_past[name] = np.zeros((1, shape[1], 0, shape[3]), dtype=np.float32)
            shapes[name] = shape
        first = shapes[self.past_names[0]]
        self.num_layers = len(self.past_names) // 2
        self.kv_heads, self.head_dim = first[1], first[3]
        self.describe = {
            "inputs": [{"name": i.name, "type": i.type, "shape": list(i.shape)} for i in session.get_inputs()],
            "outputs": [{"name": o.name, "type": o.type, "shape": list(o.shape)} for o in session.get_outputs()],
            "num_layers": self.num_layers, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
        }


def read_onnx_io(model_path: Path) -> dict | None:
    path = model_path.parent / "onnx_io.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def run_once(session, graph: Graph, np, prompt_ids: list[int], gen_tokens: int, perf_counter) -> dict:
    """One repetition from an empty cache: prefill the whole prompt, then one token at a time."""
    n_prompt = len(prompt_ids)
    ones = np.ones((1, n_prompt + gen_tokens), dtype=np.int64)
    feeds = {"input_ids": np.asarray([prompt_ids], dtype=np.int64),
             "attention_mask": ones[:, :n_prompt],
             "position_ids": np.arange(n_prompt, dtype=np.int64)[None, :]}
    feeds.update(graph.empty_past)
    names, feedback = graph.output_names, graph.feedback

    t_start = perf_counter()
    outputs = session.run(names, feeds)
    t_prefill = perf_counter()
    token = int(np.argmax(outputs[0][0, -1]))
    t_first = t_prev = perf_counter()
    tokens, latencies = [token], []
    for position in range(n_prompt, n_prompt + gen_tokens - 1):
        feeds = {"input_ids": np.array([[token]], dtype=np.int64),
                 "attention_mask": ones[:, :position + 1],
                 "position_ids": np.array([[position]], dtype=np.int64)}
        for index, past in feedback:
            feeds[past] = outputs[index]
        outputs = session.run(names, feeds)
        token = int(np.argmax(outputs[0][0, -1]))
        t_now = perf_counter()
        latencies.append(t_now - t_prev)
        t_prev = t_now
        tokens.append(token)
    if len(tokens) != gen_tokens or len(latencies) != gen_tokens - 1:
        raise RunnerError(f"generated {len(tokens)} tokens, expected {gen_tokens}")
    kv_len = outputs[feedback[0][0]].shape[2]
    if kv_len != n_prompt + gen_tokens - 1:
        raise RunnerError(f"KV cache holds {kv_len} positions, expected {n_prompt + gen_tokens - 1}")
    return {"prompt_tokens": n_prompt, "generated_tokens": len(tokens),
            "prefill_s": t_prefill - t_start, "ttft_s": t_first - t_start,
            "decode_s": sum(latencies), "inter_token_latencies_s": latencies,
            "token_ids": tokens}


# ---------------------------------------------------------------------------- main work


def run(job: dict) -> dict:
    import numpy as np
    import onnxruntime as ort
    import tokenizers

    perf_counter = time.perf_counter
    options = parse_options((job.get("engine") or {}).get("options") or {})
    model = job["model"]
    model_path = Path(model["path"])
    if not model_path.is_file():
        raise RunnerError(f"model file {model_path} not found")
    if not str(model.get("format", "")).startswith("onnx"):
        log(f"warning: model.format is {model.get('format')!r}; this image runs ONNX graphs")
    threads = job["threads"]
    workload = job["workload"]
    gen_tokens = workload["gen_tokens"]

    # ---- tokenizer and prompt
    tok_path = tokenizer_path(model)
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(tok_path))
    except Exception as err:  # noqa: BLE001 - the library raises plain Exception
        raise RunnerError(f"cannot load tokenizer {tok_path}: {err}") from err
    onnx_io = read_onnx_io(model_path)
    bos_id = onnx_io.get("bos_token_id") if onnx_io else None
    if bos_id is None:
        bos_id = tokenizer.token_to_id("<s>")
    prompt_ids, prompt_info = tokenize_prompt(tokenizer, workload["prompt"], workload.get("prompt_tokens"), bos_id)
    prompt_info["tokenizer"] = str(tok_path)
    log(f"prompt: {len(prompt_ids)} tokens (text x{prompt_info['text_repeats']}), first {prompt_ids[:8]}")

    # ---- session (load_time_s covers InferenceSession creation only)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so.graph_optimization_level = levels[options["graph_optimization_level"]]
    spin = "1" if options["allow_spinning"] else "0"
    config_entries = {
        # Workers block instead of busy-waiting between ops, so idle pool threads burn no
        # CPU (what the CELL's cgroup CPU time and the per-thread count then show).
        "session.intra_op.allow_spinning": spin,
        "session.inter_op.allow_spinning": spin,
    }
    for key, value in config_entries.items():
        so.add_session_config_entry(key, value)
    # No session.intra_op_thread_affinities: with intra_op_num_threads set explicitly ORT
    # sets no thread affinity, so nothing is pinned to a CPU outside the container's cpuset
    # (the failure seen as "pthread_setaffinity_np failed" with the default of 0 threads).
    so.log_severity_level = 0 if os.environ.get("ORCHESTRATE_VERBOSE") == "1" else 2

    ort_log: list[str] = []
    with captured_stderr(ort_log):
        t0 = perf_counter()
        session = ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])
        load_time_s = perf_counter() - t0
    graph = Graph(session, np)
    log(f"session created in {load_time_s:.3f} s: {graph.num_layers} layers, {graph.kv_heads} kv heads, "
        f"head_dim {graph.head_dim}, providers {session.get_providers()}")
    if onnx_io:
        expect = (onnx_io.get("num_layers"), onnx_io.get("num_kv_heads"), onnx_io.get("head_dim"))
        if expect != (graph.num_layers, graph.kv_heads, graph.head_dim):
            raise RunnerError(f"onnx_io.json says layers/kv heads/head_dim {expect}, the graph "
                              f"{(graph.num_layers, graph.kv_heads, graph.head_dim)}")

    # ---- warmup + timed repetitions, each from an empty cache (fresh past tensors)
    with captured_stderr(ort_log):
        for _ in range(job["warmup"]):
            run_once(session, graph, np, prompt_ids, gen_tokens, perf_counter)
    if job["warmup"]:
        log(f"warmup done ({job['warmup']})")

    tasks_before, task_source = read_task_times()
    reps = []
    cpu_per_rep = []
    for index in range(job["repetitions"]):
        cpu0 = time.process_time()
        rep = run_once(session, graph, np, prompt_ids, gen_tokens, perf_counter)
        cpu_per_rep.append(time.process_time() - cpu0)
        reps.append(rep)
        log(f"rep {index + 1}/{job['repetitions']}: prefill {rep['prefill_s']:.4f} s, "
            f"decode {rep['decode_s']:.4f} s ({(gen_tokens - 1) / rep['decode_s']:.1f} tok/s)")
    tasks_during = sorted(int(t) for t in os.listdir("/proc/self/task"))
    tasks_after, _ = read_task_times()

    # ---- threads actually used, from the OS
    deltas = {tid: tasks_after[tid] - tasks_before.get(tid, 0.0) for tid in tasks_after}
    busiest = max(deltas.values(), default=0.0)
    active = [tid for tid, d in deltas.items() if busiest > 0 and d >= ACTIVE_SHARE * busiest]
    per_thread = [{"tid": tid, "name": thread_name(tid), "cpu_s": round(d, 6), "active": tid in active}
                  for tid, d in sorted(deltas.items())]
    used = len(active)
    setting = session.get_session_options().intra_op_num_threads
    how = (f"count of threads in /proc/self/task whose CPU time ({task_source}) over the timed "
           f"repetitions was >= {ACTIVE_SHARE:.0%} of the busiest thread's: {used} of "
           f"{len(tasks_during)} threads; engine setting SessionOptions.intra_op_num_threads={setting} "
           f"(ONNX Runtime: the calling thread + {max(setting - 1, 0)} pool workers), "
           f"inter_op_num_threads=1, sequential execution, spinning "
           f"{'allowed' if options['allow_spinning'] else 'disabled'}")
    if used != threads:
        log(f"warning: {used} threads ran during generation, {threads} requested")

    peak_rss = read_vmhwm()
    affinity_errors = [line for line in ort_log if "affinity" in line.lower()]
    if affinity_errors:
        log(f"warning: ONNX Runtime reported thread-affinity problems: {affinity_errors[:3]}")

    # ---- result
    build = read_build_info()
    engine_build = {
        "onnxruntime": ort.__version__,
        "execution_providers_available": ort.get_available_providers(),
        "execution_providers_used": session.get_providers(),
        "numpy": np.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        "onnxruntime_build_info": ort.get_build_info() if hasattr(ort, "get_build_info") else None,
        "cpu": cpu_facts(),
        "image": build,
    }
    extra = {
        "timing_definitions": {
            "clock": "time.perf_counter (monotonic), in process",
            "load_time_s": "onnxruntime.InferenceSession(model) creation: parse, graph optimization, kernel setup",
            "prefill_s": "one InferenceSession.run over the whole prompt with empty past tensors, until its "
                         "outputs are numpy arrays",
            "ttft_s": "start of prefill until numpy.argmax of the last position's logits gives the first token id",
            "inter_token_latencies_s": "between consecutive generated token ids: building the feeds (new token, "
                                       "attention mask, position, present -> past) + InferenceSession.run + argmax",
            "decode_s": "sum of inter_token_latencies_s",
            "kv_cache": "each repetition starts from float32 past tensors of sequence length 0",
        },
        "session": {
            "intra_op_num_threads": setting,
            "inter_op_num_threads": session.get_session_options().inter_op_num_threads,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": options["graph_optimization_level"],
            "config_entries": config_entries,
            "spinning": "allowed" if options["allow_spinning"] else
                        "disabled: intra/inter-op pool workers block between ops instead of spin-waiting",
            "thread_affinity": "not set (intra_op_num_threads given explicitly, no "
                               "session.intra_op_thread_affinities): threads float within the container's cpuset",
            "providers": session.get_providers(),
        },
        "threads": {"per_thread": per_thread, "threads_in_process": len(tasks_during), "source": task_source,
                    "rule": f"active = CPU time >= {ACTIVE_SHARE:.0%} of the busiest thread's over the timed runs"},
        "process_cpu_s_per_repetition": {
            "values": cpu_per_rep,
            "how": "time.process_time() around each timed repetition (all threads of the process)"},
        "model": {"path": str(model_path), "graph": graph.describe, "onnx_io": onnx_io},
        "prompt": prompt_info,
        "onnxruntime_log": ort_log,
    }
    if affinity_errors:
        extra["affinity_errors"] = affinity_errors
    result = {
        "schema_version": 1,
        "cell_id": job["cell_id"],
        "engine": {"name": ENGINE_NAME, "version": ort.__version__, "build": engine_build},
        "measurement_boundary": "in-process",
        "threads": {"requested": threads, "used": used, "how": how},
        "load_time_s": load_time_s,
        "peak_rss_bytes": peak_rss,
        "prompt_token_ids": prompt_ids,
        "repetitions": [
            {"index": i, "prompt_tokens": r["prompt_tokens"], "generated_tokens": r["generated_tokens"],
             "prefill_s": r["prefill_s"], "decode_s": r["decode_s"], "ttft_s": r["ttft_s"],
             "inter_token_latencies_s": r["inter_token_latencies_s"], "token_ids": r["token_ids"]}
            for i, r in enumerate(reps)],
        "extra": extra,
        "unmeasured": {},
    }
    if peak_rss is None:
        result["unmeasured"]["peak_rss_bytes"] = "VmHWM not readable from /proc/self/status"
    return result


def read_build_info() -> dict | None:
    path = Path(os.environ.get("ORCHESTRATE_BUILD_INFO", DEFAULT_BUILD_INFO))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_result(output_dir: Path, result: dict) -> Path:
    """<output_dir>/result.json through a temporary file in the same folder and a rename."""
    final = output_dir / "result.json"
    fd, tmp_name = tempfile.mkstemp(prefix=".result.", suffix=".tmp", dir=str(output_dir))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return final


def main() -> int:
    job_path = Path(os.environ.get("ORCHESTRATE_JOB", DEFAULT_JOB))
    try:
        job = load_job(job_path)
        log(f"cell {job['cell_id']}: model {job['model']['path']}, threads {job['threads']}, "
            f"warmup {job['warmup']}, repetitions {job['repetitions']}")
        result = run(job)
        path = write_result(Path(job["output_dir"]), result)
    except RunnerError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except Exception as err:  # noqa: BLE001 - any failure must exit non-zero without a result
        traceback.print_exc(file=sys.stderr)
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
