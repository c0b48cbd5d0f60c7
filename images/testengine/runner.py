"""TEST DOUBLE runner: speaks the CELL contract through the runner kit, runs no model, misbehaves on request.

behaviour (engine option): ok | oom | sleep | crash | invalid | threads-mismatch, and two
broken runners the conformance suite must catch: lax (accepts any job unchecked) and
lie-threads (reports the requested thread count but runs one thread). 'ok' keeps
``threads`` threads busy and times a loop with a real clock; its numbers describe nothing
but that loop.

A perplexity job (workload.kind "perplexity") is run through the runner kit's windows and
scoring with made-up deterministic logits: each window position's row over a small
vocabulary of VOCAB ids is derived from the window's ids, and the text's ids are scored
modulo VOCAB. Its NLL describes nothing but that arithmetic; the behaviours work as for
generation.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from runnerkit import job as jobs
from runnerkit import main, perplexity, proc, prompt, result, timing

STEP_S = 0.002  # busy time per "token"
VOCAB = 61  # the made-up vocabulary of the perplexity logits


def busy(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def encode(text: str) -> list[int]:
    """A stand-in tokenizer: BOS, then one id per word."""
    return [1] + [3 + len(word) for word in text.split()]


def context_length(model_path: str) -> int | None:
    """The model's context from the prepared folder's hf/config.json, when there is one."""
    for folder in Path(model_path).parents:
        config = folder / "hf" / "config.json"
        if config.is_file():
            return json.loads(config.read_text()).get("max_position_embeddings")
    return None


def unchecked() -> jobs.Job:
    """The lax behaviour: the job as written, no check at all."""
    doc = json.loads(Path(os.environ.get("ORCHESTRATE_JOB", jobs.DEFAULT_JOB)).read_text())
    model, workload = doc.get("model", {}), doc.get("workload", {})
    return jobs.Job(doc.get("cell_id", ""), "testengine", doc.get("engine", {}).get("options", {}), model.get("id"),
                    model.get("format"), model.get("path"), model.get("tokenizer"), doc.get("threads", 1),
                    workload.get("prompt", "x"), workload.get("prompt_tokens"), workload.get("gen_tokens", 1),
                    doc.get("warmup", 0), doc.get("repetitions", 1), doc.get("output_dir", "/out"),
                    kind=workload.get("kind", jobs.GENERATE), text=workload.get("text", "x"),
                    ids_path=workload.get("ids_path"), ids_sha256=workload.get("ids_sha256"),
                    context=workload.get("context", 2), stride=workload.get("stride", 1))


def made_up_logits(window_ids: list[int], first: int, count: int) -> list[list[float]]:
    """Rows first .. first+count-1 of a window: each a deterministic function of the ids up to
    its position, over VOCAB ids (float32-representable values: multiples of 1/32)."""
    busy(STEP_S)  # a window costs some time, as a forward pass would
    rows = []
    for position in range(first, first + count):
        seed = sum((i + 1) * (window_ids[i] % VOCAB + 1) for i in range(max(position - 3, 0), position + 1))
        rows.append([((seed * 31 + v * 17 + position) % 97) / 32.0 for v in range(VOCAB)])
    return rows


def read_ids_unchecked(job: jobs.Job) -> list[int]:
    """The lax behaviour's ids: the file's ids as they are, no sha256 or content check."""
    return json.loads(Path(job.ids_path).read_text())["ids"]


def body(job: jobs.Job) -> dict:
    behaviour = job.options.get("behaviour", "ok")
    if behaviour == "crash":
        print("testengine: crashing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)  # a status of its own, not the runner kit's 1
    if behaviour == "sleep":
        time.sleep(10**6)
    if behaviour == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if behaviour == "invalid":
        return {"schema_version": 1, "cell_id": job.cell_id, "note": "missing every measured field"}
    if behaviour != "lax":
        if not os.path.exists(job.model_path):
            raise jobs.JobError(f"model {job.model_path} not found")
    if job.perplexity:
        ids = read_ids_unchecked(job) if behaviour == "lax" else perplexity.load_ids(job)
        if behaviour != "lax":
            perplexity.check_context(job.context, context_length(job.model_path))
            wins = perplexity.windows(len(ids), job.context, job.stride)
        else:  # whatever context and stride the job says: windows of some shape all the same
            context = max(job.context or 2, 2)
            wins = perplexity.windows(max(len(ids), 2), context, min(max(job.stride or 1, 1), context - 1))
        scored_ids = [i % VOCAB for i in ids]  # the made-up vocabulary
        perplexity.warmup(scored_ids, wins, made_up_logits, job.warmup)

        def timed() -> list[dict]:
            return perplexity.repetitions(scored_ids, wins, made_up_logits, job.repetitions)
    else:
        ids, _ = prompt.shape(encode, job.prompt, job.prompt_tokens)
        if behaviour != "lax":
            prompt.check_context(len(ids), job.gen_tokens, context_length(job.model_path))
        for index in range(job.warmup):
            timing.repetition(index, ids, job.gen_tokens, lambda: busy(STEP_S), lambda _: 7, lambda _: busy(STEP_S))

        def timed() -> list[dict]:
            return [timing.repetition(index, ids, job.gen_tokens, lambda: busy(STEP_S), lambda _: 7,
                                      lambda _: busy(STEP_S)) for index in range(job.repetitions)]
    workers = {"ok": job.threads - 1, "threads-mismatch": job.threads, "lie-threads": 0}.get(behaviour, job.threads - 1)
    stop = threading.Event()
    pool = [threading.Thread(target=lambda: [busy(STEP_S) for _ in iter(stop.is_set, True)], name=f"worker-{i}")
            for i in range(max(workers, 0))]
    with proc.cpu_window() as window:
        for thread in pool:
            thread.start()
        reps = timed()
    stop.set()  # after the window closed: a thread that has ended is no longer in /proc
    for thread in pool:
        thread.join()
    threads = result.threads(job, window, job.threads, "the double's own count of the worker threads it started, "
                                                      "plus the main thread")
    engine = {"name": "testengine", "version": "test-double", "build": {"test_double": True}}
    if job.perplexity:
        return result.perplexity_document(job, engine, threads, 0.0, proc.vm_hwm_bytes(),
                                          perplexity.result_fields(job, ids, wins, reps), reps,
                                          {"behaviour": behaviour, "logits": f"made up, over {VOCAB} ids; the "
                                                                             f"text's ids scored modulo {VOCAB}"})
    return result.document(job, engine, threads, 0.0, proc.vm_hwm_bytes(), ids, reps, {"behaviour": behaviour})


def illegal_instruction() -> None:
    """Execute an undefined instruction (ud2 on x86-64, udf on arm64): the kernel sends SIGILL."""
    import ctypes
    import mmap
    import platform

    code = b"\x0f\x0b" if platform.machine() in ("x86_64", "AMD64") else b"\x00\x00\x00\x00"
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()


def load() -> jobs.Job:
    try:
        doc = json.loads(Path(os.environ.get("ORCHESTRATE_JOB", jobs.DEFAULT_JOB)).read_text())
        lax = doc["engine"]["options"].get("behaviour") == "lax"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        lax = False
    return unchecked() if lax else jobs.load()


if __name__ == "__main__":
    if os.environ.get("ORCHESTRATE_ON_START") == "sigill":
        illegal_instruction()
    sys.exit(main.run("testengine", body, load, kinds=(jobs.GENERATE, jobs.PERPLEXITY)))
