"""The contract for a native engine (C++, Rust, ...): the kit does every step, the child times the work.

The child (a program in the engine's language) loads the model, tokenizes when asked, and
runs prefill + greedy decode or perplexity windows, timing them itself with its own
monotonic clock; it speaks the line protocol of runnerkit.child (docs/contract.md, "Native
runners"). Everything else is done here once for every native engine: the job and its
checks, prompt shaping, the context and vocabulary checks, the perplexity ids file and its
windows, per-thread CPU of the child's process tree and its VmHWM, and the contract's
repetitions. The engine's own runner.py adds what it alone knows (``extra``, its build) and
writes the RESULT with runnerkit.result.

    Native      the child and its requests: load, tokenize, prepare, generate, perplexity,
                detokenize, quit
    generation  the generation workload over a Native: a Measured
    evaluation  the perplexity workload over a Native: a Measured
    run         a whole CELL: start the child, measure, let the engine describe it, the RESULT
    serve       the entry point of a native engine's runner.py
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runnerkit import child as children
from runnerkit import job as jobs
from runnerkit import main, perplexity, proc, prompt, result
from runnerkit.job import Job, JobError

PROTOCOL_VERSION = 1


class Native:
    """A native engine's runner as a child process, one request at a time."""

    def __init__(self, command: list[str], log: Callable[[str], None], name: str) -> None:
        self.log, self.name = log, name
        self.child = children.Child(command, log, name)
        self.tokenized: dict = {}  # the last tokenize answer (with what the child says about it)

    @property
    def pid(self) -> int:
        return self.child.pid

    def load(self, job: Job, tokenizer: str | None) -> dict:
        """Load the model once (and the tokenizer, when given): load_s, context_length, vocab_size, engine."""
        return self.child.request("load", protocol=PROTOCOL_VERSION, model=job.model_path, format=job.model_format,
                                  threads=job.threads, options=jobs.options(job), tokenizer=tokenizer)

    def tokenize(self, text: str) -> list[int]:
        """The model's tokenization of ``text``, special tokens added the way the tokenizer is configured."""
        self.tokenized = self.child.request("tokenize", text=text)
        return list(self.tokenized["ids"])

    def prepare(self, positions: int, batch: int) -> dict:
        """Make ready for sequences of up to ``positions`` ids, ``batch`` at once: prepare_s, threads_reported."""
        return self.child.request("prepare", positions=positions, batch=batch)

    def generate(self, ids: list[int], gen_tokens: int, count: int) -> list[dict]:
        """``count`` timed greedy generations of ``gen_tokens`` ids after ``ids``, as the child measured them."""
        return self.child.request("generate", ids=ids, gen_tokens=gen_tokens, repetitions=count)["repetitions"]

    def perplexity(self, windows: list[dict], count: int) -> list[dict]:
        """``count`` timed evaluations of the windows ({ids, score_last}): time_s and nll_sums each."""
        return self.child.request("perplexity", windows=windows, repetitions=count)["repetitions"]

    def detokenize(self, ids: list[int]) -> str:
        return self.child.request("detokenize", ids=ids)["text"]

    def close(self) -> None:
        """Ask the child to end and wait for a clean exit."""
        self.child.send(json.dumps({"op": "quit"}))
        self.child.finish()

    def __enter__(self) -> Native:
        return self

    def __exit__(self, *exc) -> None:
        self.child.__exit__(*exc)


@dataclass
class Measured:
    """What one CELL measured in the child, for the engine's runner to describe and write."""

    loaded: dict  # the child's load answer (engine facts)
    prepared: dict  # its prepare answer
    window: proc.CpuWindow  # per-thread CPU of the child's process tree over the timed repetitions
    peak_rss_bytes: int | None  # the child's VmHWM
    raw: list[dict]  # the child's timed repetitions as it sent them (with its engine-specific figures)
    repetitions: list[dict]  # the contract's repetitions
    prompt_ids: list[int] = field(default_factory=list)  # generation
    repeats: int = 1  # generation: times the prompt text was repeated
    perplexity: dict | None = None  # perplexity: the RESULT's perplexity object
    ids_file: dict | None = None  # perplexity: what the ids file said about itself
    windows: list[perplexity.Window] = field(default_factory=list)  # perplexity: the windows evaluated

    @property
    def load_time_s(self) -> float:
        return self.loaded["load_s"] + self.prepared["prepare_s"]


def tokenizer_path(job: Job) -> str | None:
    """The job's tokenizer.json, else one beside the model (a Hugging Face folder, the GGUF's folder, or
    the prepared model's hf/ folder); None when there is none."""
    if job.tokenizer:
        return job.tokenizer
    model = Path(job.model_path)
    candidates = [model / "tokenizer.json"] if model.is_dir() else [model.parent / "tokenizer.json",
                                                                      model.parent.parent / "hf" / "tokenizer.json"]
    return next((str(p) for p in candidates if p.is_file()), None)


def _model_exists(job: Job) -> None:
    if not Path(job.model_path).exists():
        raise JobError(f"model {job.model_path} not found")


def repetition(index: int, prompt_tokens: int, gen_tokens: int, raw: dict) -> dict:
    """The contract's repetition from the child's: decode_s is the sum of its inter-token latencies."""
    tokens, latencies = list(raw["token_ids"]), list(raw["inter_token_latencies_s"])
    if len(tokens) != gen_tokens or len(latencies) != gen_tokens - 1:
        raise RuntimeError(f"repetition {index}: the child generated {len(tokens)} ids and {len(latencies)} "
                           f"latencies, wanted {gen_tokens} and {gen_tokens - 1}")
    return {"index": index, "prompt_tokens": prompt_tokens, "generated_tokens": len(tokens),
            "prefill_s": raw["prefill_s"], "decode_s": sum(latencies), "ttft_s": raw["ttft_s"],
            "inter_token_latencies_s": latencies, "token_ids": tokens}


def generation(job: Job, engine: Native) -> Measured:
    """Load, shape the prompt with the child's tokenizer, check the context, warm up, time the repetitions."""
    _model_exists(job)
    loaded = engine.load(job, tokenizer_path(job))
    ids, repeats = prompt.shape(engine.tokenize, job.prompt, job.prompt_tokens)
    prompt.check_context(len(ids), job.gen_tokens, loaded.get("context_length"))
    prepared = engine.prepare(positions=len(ids) + job.gen_tokens, batch=len(ids))
    main.log(f"loaded in {loaded['load_s'] + prepared['prepare_s']:.3f} s; prompt {len(ids)} ids "
             f"(text repeated {repeats} x)")
    if job.warmup:
        engine.generate(ids, job.gen_tokens, job.warmup)
    with proc.cpu_window(engine.pid) as window:
        raw = engine.generate(ids, job.gen_tokens, job.repetitions)
    peak = proc.vm_hwm_bytes(engine.pid)
    reps = [repetition(i, len(ids), job.gen_tokens, r) for i, r in enumerate(raw)]
    for rep in reps:
        main.log(f"rep {rep['index'] + 1}/{len(reps)}: ttft {rep['ttft_s']:.4f} s, decode {rep['decode_s']:.4f} s "
                 f"({(job.gen_tokens - 1) / rep['decode_s']:.1f} tok/s)")
    return Measured(loaded, prepared, window, peak, raw, reps, prompt_ids=ids, repeats=repeats)


def _evaluation(index: int, raw: dict, wins: list[perplexity.Window]) -> dict:
    sums = list(raw["nll_sums"])
    if len(sums) != len(wins):
        raise RuntimeError(f"evaluation {index}: the child scored {len(sums)} windows, not {len(wins)}")
    scored = sum(end - first for _, end, first in wins)
    mean_nll = sum(sums) / scored
    if not math.isfinite(mean_nll):
        raise RuntimeError(f"evaluation {index}: the mean negative log-likelihood is not finite")
    return {"index": index, "time_s": raw["time_s"], "windows": len(wins), "scored_tokens": scored,
            "mean_nll": mean_nll}


def evaluation(job: Job, engine: Native) -> Measured:
    """The perplexity workload: the checked ids and their windows here, every window's forward passes and
    negative log-likelihood sum (float64 from the float32 logits) in the child."""
    document = perplexity.read_ids(job)
    ids = list(document["ids"])
    if document.get("text") not in (None, job.text):
        main.log(f"warning: ids file {job.ids_path} is for text {document['text']!r}, the job names {job.text!r}")
    wins = perplexity.windows(len(ids), job.context, job.stride)
    _model_exists(job)
    loaded = engine.load(job, None)  # the ids come tokenized: no tokenizer
    perplexity.check_context(job.context, loaded.get("context_length"), loaded.get("vocab_size"), ids)
    prepared = engine.prepare(positions=job.context, batch=job.context)
    main.log(f"loaded in {loaded['load_s'] + prepared['prepare_s']:.3f} s; text {job.text}: {len(ids)} ids, "
             f"{len(wins)} windows (context {job.context}, stride {job.stride})")
    requests = [{"ids": ids[start:end], "score_last": end - first} for start, end, first in wins]
    if job.warmup:
        engine.perplexity(requests[:1], job.warmup)
    with proc.cpu_window(engine.pid) as window:
        raw = engine.perplexity(requests, job.repetitions)
    peak = proc.vm_hwm_bytes(engine.pid)
    reps = [_evaluation(i, r, wins) for i, r in enumerate(raw)]
    main.log(perplexity.describe(reps))
    ids_file = {"path": job.ids_path, "bytes": Path(job.ids_path).stat().st_size, "text": document.get("text"),
                "tokenizer": document.get("tokenizer")}
    return Measured(loaded, prepared, window, peak, raw, reps, perplexity=perplexity.result_fields(job, ids, wins, reps),
                    ids_file=ids_file, windows=wins)


def measure(job: Job, engine: Native) -> Measured:
    """The job's workload over the child."""
    return evaluation(job, engine) if job.perplexity else generation(job, engine)


# (engine's name, version and build; its threads figures (runnerkit.result.threads); its extra)
Describe = Callable[[Job, Native, Measured], tuple[dict, dict, dict]]


def run(job: Job, command: list[str], name: str, describe: Describe) -> dict:
    """One CELL of a native engine: its runner ``command`` measures, ``describe`` adds what only the engine
    knows (it may still send requests, e.g. detokenize), the kit assembles the RESULT."""
    with Native(command, main.log, name) as engine:
        measured = measure(job, engine)
        engine_info, threads, extra = describe(job, engine, measured)
        engine.close()
    if job.perplexity:
        return result.perplexity_document(job, engine_info, threads, measured.load_time_s, measured.peak_rss_bytes,
                                          measured.perplexity, measured.repetitions, extra)
    return result.document(job, engine_info, threads, measured.load_time_s, measured.peak_rss_bytes,
                           measured.prompt_ids, measured.repetitions, extra)


def serve(name: str, command: list[str], describe: Describe) -> None:
    """Run the CELL of $ORCHESTRATE_JOB with the native ``command`` and exit: 0 with a RESULT, 1 without."""
    sys.exit(main.run(f"{name}-runner", lambda job: run(job, command, name, describe),
                      kinds=(jobs.GENERATE, jobs.PERPLEXITY)))
