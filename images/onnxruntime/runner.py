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

import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ortfacts import captured_stderr, cpu_facts, cpu_path, tokenizer_path  # noqa: E402
from runnerkit import job as jobs  # noqa: E402
from runnerkit import main, perplexity, proc, prompt, result, timing  # noqa: E402

ENGINE_NAME = "onnxruntime"
PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."
log = main.log


GENERATION_TIMING = {
    "clock": "time.perf_counter (monotonic), in process (runnerkit.timing)",
    "load_time_s": "onnxruntime.InferenceSession(model) creation: parse, graph optimization, kernel setup",
    "prefill_s": "one InferenceSession.run over the whole prompt with empty past tensors, until its "
                 "outputs are numpy arrays",
    "ttft_s": "start of prefill until numpy.argmax of the last position's logits gives the first token id",
    "inter_token_latencies_s": "between consecutive generated token ids: building the feeds (new token, "
                               "attention mask, position, present -> past) + InferenceSession.run + argmax",
    "decode_s": "sum of inter_token_latencies_s",
    "kv_cache": "each repetition starts from float32 past tensors of sequence length 0",
}
PERPLEXITY_TIMING = {
    "clock": "time.perf_counter (monotonic), in process (runnerkit.perplexity)",
    "load_time_s": "onnxruntime.InferenceSession(model) creation: parse, graph optimization, kernel setup",
    "time_s": "one evaluation of the whole text: for every window, its InferenceSession.run calls from empty "
              "past tensors and the float64 scoring of its logits rows (runnerkit.perplexity)",
    "window": "with a graph that keeps the last position's logits only (modelmaker's export): one run from "
              "empty past over the window's ids before its first scored id (positions 0..), then one run per "
              "further scored id with present -> past fed back, each giving the next logits row; with a graph "
              "that gives every position's logits: one run over the whole window",
    "warmup": "the first window only, untimed",
}


class RunnerError(RuntimeError):
    """A failure with a message meant for the CELL's record (printed on stderr)."""


# ---------------------------------------------------------------------------- prompt


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


def run_once(index: int, session, graph: Graph, np, prompt_ids: list[int], gen_tokens: int) -> dict:
    """One repetition from an empty cache: prefill the whole prompt, then one token at a time."""
    n_prompt = len(prompt_ids)
    ones = np.ones((1, n_prompt + gen_tokens), dtype=np.int64)
    names, feedback = graph.output_names, graph.feedback
    state = {"outputs": None, "position": n_prompt}

    def prefill():
        feeds = {"input_ids": np.asarray([prompt_ids], dtype=np.int64), "attention_mask": ones[:, :n_prompt],
                 "position_ids": np.arange(n_prompt, dtype=np.int64)[None, :], **graph.empty_past}
        state["outputs"] = session.run(names, feeds)
        return state["outputs"]

    def step(token: int):
        position = state["position"]
        feeds = {"input_ids": np.array([[token]], dtype=np.int64), "attention_mask": ones[:, :position + 1],
                 "position_ids": np.array([[position]], dtype=np.int64)}
        for out_index, past in feedback:
            feeds[past] = state["outputs"][out_index]
        state["outputs"] = session.run(names, feeds)
        state["position"] = position + 1
        return state["outputs"]

    rep = timing.repetition(index, prompt_ids, gen_tokens, prefill, lambda out: np.argmax(out[0][0, -1]), step)
    kv_len = state["outputs"][feedback[0][0]].shape[2]
    if kv_len != n_prompt + gen_tokens - 1:
        raise RunnerError(f"KV cache holds {kv_len} positions, expected {n_prompt + gen_tokens - 1}")
    return rep


def logits_last_only(session, graph: Graph, np, ids: list[int]) -> bool:
    """Whether the graph's logits hold the last position only (modelmaker's export: [batch, 1, vocab]):
    asked of the graph with one untimed run over two ids (its output metadata may not say)."""
    feeds = {"input_ids": np.asarray([ids[:2]], dtype=np.int64), "attention_mask": np.ones((1, 2), np.int64),
             "position_ids": np.arange(2, dtype=np.int64)[None, :], **graph.empty_past}
    positions = session.run(graph.output_names[:1], feeds)[0].shape[1]
    if positions not in (1, 2):
        raise RunnerError(f"logits for {positions} positions from a run over 2 ids")
    return positions == 1


def window_logits_function(session, graph: Graph, np, last_only: bool):
    """perplexity's window_logits(window_ids, first, count): the window from empty past tensors,
    the float32 logits rows of window positions first .. first+count-1.

    A graph with every position's logits: one session.run over the whole window (positions
    0..len-1). A graph with the last position's only: one session.run over window positions
    0..first (empty past), then one run per further position with the cache fed back, each
    giving the next row; the window's last id is not fed (no row of it is scored).
    """
    names, feedback = graph.output_names, graph.feedback

    def full(window_ids: list[int], first: int, count: int):
        n = len(window_ids)
        feeds = {"input_ids": np.asarray([window_ids], dtype=np.int64), "attention_mask": np.ones((1, n), np.int64),
                 "position_ids": np.arange(n, dtype=np.int64)[None, :], **graph.empty_past}
        logits = session.run(names[:1], feeds)[0]
        if logits.shape[1] != n:
            raise RunnerError(f"logits of shape {logits.shape} for a window of {n} ids")
        return logits[0, first:first + count]

    def stepwise(window_ids: list[int], first: int, count: int):
        last = first + count - 1  # the last window position whose logits are scored
        ones = np.ones((1, last + 1), dtype=np.int64)
        feeds = {"input_ids": np.asarray([window_ids[:first + 1]], dtype=np.int64),
                 "attention_mask": ones[:, :first + 1],
                 "position_ids": np.arange(first + 1, dtype=np.int64)[None, :], **graph.empty_past}
        outputs = session.run(names, feeds)
        rows = [outputs[0][0, -1]]
        for position in range(first + 1, last + 1):
            feeds = {"input_ids": np.array([[window_ids[position]]], dtype=np.int64),
                     "attention_mask": ones[:, :position + 1],
                     "position_ids": np.array([[position]], dtype=np.int64)}
            for out_index, past in feedback:
                feeds[past] = outputs[out_index]
            outputs = session.run(names, feeds)
            rows.append(outputs[0][0, -1])
        kv_len = outputs[feedback[0][0]].shape[2]
        if kv_len != last + 1:
            raise RunnerError(f"KV cache holds {kv_len} positions, expected {last + 1}")
        return np.stack(rows)

    return stepwise if last_only else full


def run_perplexity(job: jobs.Job, session, graph: Graph, np, ids: list[int], wins: list, ort_log: list[str]) -> tuple:
    """warmup (first window, untimed), then the timed evaluations inside the CPU window."""
    last_only = logits_last_only(session, graph, np, ids)
    window_logits = window_logits_function(session, graph, np, last_only)
    with captured_stderr(ort_log):
        perplexity.warmup(ids, wins, window_logits, job.warmup)
    if job.warmup:
        log(f"warmup done ({job.warmup} x the first window)")
    cpu_per_rep = []
    reps = []
    with proc.cpu_window() as window:
        for index in range(job.repetitions):
            cpu0 = time.process_time()
            reps.append(perplexity.evaluation(index, ids, wins, window_logits))
            cpu_per_rep.append(time.process_time() - cpu0)
            log(f"evaluation {index + 1}/{job.repetitions}: {reps[-1]['time_s']:.4f} s, "
                f"mean NLL {reps[-1]['mean_nll']:.6f}")
    log(perplexity.describe(reps))
    return reps, window, cpu_per_rep, last_only


def run_generation(job: jobs.Job, session, graph: Graph, np, prompt_ids: list[int], ort_log: list[str]) -> tuple:
    """warmup + timed repetitions, each from an empty cache (fresh past tensors)."""
    gen_tokens = job.gen_tokens
    with captured_stderr(ort_log):
        for index in range(job.warmup):
            run_once(index, session, graph, np, prompt_ids, gen_tokens)
    if job.warmup:
        log(f"warmup done ({job.warmup})")

    reps = []
    cpu_per_rep = []
    with proc.cpu_window() as window:
        for index in range(job.repetitions):
            cpu0 = time.process_time()
            rep = run_once(index, session, graph, np, prompt_ids, gen_tokens)
            cpu_per_rep.append(time.process_time() - cpu0)
            reps.append(rep)
            log(f"rep {index + 1}/{job.repetitions}: prefill {rep['prefill_s']:.4f} s, "
                f"decode {rep['decode_s']:.4f} s ({(gen_tokens - 1) / rep['decode_s']:.1f} tok/s)")
    return reps, window, cpu_per_rep


# ---------------------------------------------------------------------------- main work


def run(job: jobs.Job) -> dict:
    import numpy as np
    import onnxruntime as ort
    import tokenizers

    perf_counter = time.perf_counter
    allow_spinning = jobs.option(job, "allow_spinning")
    optimization = jobs.option(job, "graph_optimization_level")
    model_path = Path(job.model_path)
    if not model_path.is_file():
        raise jobs.JobError(f"model file {model_path} not found")
    if not job.model_format.startswith("onnx"):
        log(f"warning: model.format is {job.model_format!r}; this image runs ONNX graphs")
    threads, gen_tokens = job.threads, job.gen_tokens
    onnx_io = read_onnx_io(model_path)

    if job.perplexity:
        # The text comes tokenized (the ids file): no tokenizer here.
        ids = perplexity.load_ids(job)
        wins = perplexity.windows(len(ids), job.context, job.stride)
        perplexity.check_context(job.context, (onnx_io or {}).get("context_length"),
                                 (onnx_io or {}).get("vocab_size"), ids)
        log(f"perplexity: {len(ids)} ids, context {job.context}, stride {job.stride}: {len(wins)} windows")
    else:
        # ---- tokenizer and prompt
        tok_path = tokenizer_path(job)
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(tok_path))
        except Exception as err:  # noqa: BLE001 - the library raises plain Exception
            raise RunnerError(f"cannot load tokenizer {tok_path}: {err}") from err
        bos_id = onnx_io.get("bos_token_id") if onnx_io else None
        if bos_id is None:
            bos_id = tokenizer.token_to_id("<s>")
        # BOS where the tokenizer adds one, as llama_tokenize(add_special=true) does.
        prompt_ids, repeats = prompt.shape(lambda text: tokenizer.encode(text, add_special_tokens=True).ids,
                                           job.prompt, job.prompt_tokens)
        prompt.check_context(len(prompt_ids), gen_tokens, (onnx_io or {}).get("context_length"))
        prompt_info = {"text_repeats": repeats, "tokenizer": str(tok_path),
                       "tokenize": "tokenizers.Tokenizer.from_file(tokenizer.json).encode(text, "
                                   "add_special_tokens=True)",
                       "bos_token_id": bos_id, "starts_with_bos": bos_id is not None and prompt_ids[0] == bos_id}
        log(f"prompt: {len(prompt_ids)} tokens (text x{repeats}), first {prompt_ids[:8]}")

    # ---- session (load_time_s covers InferenceSession creation only)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so.graph_optimization_level = levels[optimization]
    spin = "1" if allow_spinning else "0"
    config_entries = {
        # Workers block instead of busy-waiting between ops, so idle pool threads burn no
        # CPU (what the CELL's cgroup CPU time and the per-thread figures then show).
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

    if job.perplexity:
        vocab = list(session.get_outputs()[0].shape)[-1]
        perplexity.check_context(job.context, None, vocab if isinstance(vocab, int) else None, ids)
        reps, window, cpu_per_rep, last_only = run_perplexity(job, session, graph, np, ids, wins, ort_log)
    else:
        reps, window, cpu_per_rep = run_generation(job, session, graph, np, prompt_ids, ort_log)
    setting = session.get_session_options().intra_op_num_threads
    threads_figures = result.threads(
        job, window, setting,
        f"SessionOptions.intra_op_num_threads={setting} read back from the session (ONNX Runtime: the calling "
        f"thread + {max(setting - 1, 0)} pool workers), inter_op_num_threads=1, sequential execution, spinning "
        f"{'allowed' if allow_spinning else 'disabled'}")

    affinity_errors = [line for line in ort_log if "affinity" in line.lower()]
    if affinity_errors:
        log(f"warning: ONNX Runtime reported thread-affinity problems: {affinity_errors[:3]}")

    # ---- result
    engine_build = {
        "onnxruntime": ort.__version__,
        "execution_providers_available": ort.get_available_providers(),
        "execution_providers_used": session.get_providers(),
        "numpy": np.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        "onnxruntime_build_info": ort.get_build_info() if hasattr(ort, "get_build_info") else None,
        "cpu": cpu_facts(),
        "cpu_path": cpu_path(),
        "image": result.read_build_info(),
    }
    extra = {
        "timing_definitions": PERPLEXITY_TIMING if job.perplexity else GENERATION_TIMING,
        "session": {
            "intra_op_num_threads": setting,
            "inter_op_num_threads": session.get_session_options().inter_op_num_threads,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": optimization,
            "config_entries": config_entries,
            "spinning": "allowed" if allow_spinning else
                        "disabled: intra/inter-op pool workers block between ops instead of spin-waiting",
            "thread_affinity": "not set (intra_op_num_threads given explicitly, no "
                               "session.intra_op_thread_affinities): threads float within the container's cpuset",
            "providers": session.get_providers(),
        },
        "threads_in_process": window.threads_seen,
        "process_cpu_s_per_repetition": {
            "values": cpu_per_rep,
            "how": "time.process_time() around each timed repetition (all threads of the process)"},
        "model": {"path": str(model_path), "graph": graph.describe, "onnx_io": onnx_io},
        "onnxruntime_log": ort_log,
    }
    if affinity_errors:
        extra["affinity_errors"] = affinity_errors
    engine = {"name": ENGINE_NAME, "version": ort.__version__, "build": engine_build}
    if job.perplexity:
        extra["perplexity"] = {
            "session_runs_per_window": "1 + (scored ids - 1): the graph keeps the last position's logits only"
                                       if last_only else "1: the graph gives every position's logits",
            "window_ranges": [list(w) for w in wins],
            "window_ranges_how": "[start, end, first scored position] over the text's ids"}
        return result.perplexity_document(job, engine, threads_figures, load_time_s, proc.vm_hwm_bytes(),
                                          perplexity.result_fields(job, ids, wins, reps), reps, extra)
    extra["prompt"] = prompt_info
    return result.document(job, engine, threads_figures, load_time_s, proc.vm_hwm_bytes(), prompt_ids, reps, extra)


if __name__ == "__main__":
    sys.exit(main.run("ort-runner", run, kinds=(jobs.GENERATE, jobs.PERPLEXITY)))
