"""The perplexity workload (docs/contract.md, "The perplexity workload"), the same for every runner.

    load_ids       read the text's ids file, check its sha256, the ids and context/stride
    windows        the windows [b, end) and the first position each one scores
    evaluate       score every window with the runner's forward pass: (mean_nll, scored)
    repetitions    warmup (first window only, untimed) is ``warmup``; timed evaluations
    result_fields  the RESULT's ``perplexity`` object

A runner supplies ``window_logits(window_ids, first, count)``: one forward pass from an empty
KV cache over ``window_ids`` (positions 0 .. len-1), returning the float32 logits rows of
window positions first .. first+count-1 as a 2-D array-like (a numpy array, or a list of
lists). The kit scores them in float64. Standard library only: numpy is used only when the
rows the runner hands over are numpy arrays (numpy is then already imported by the runner).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from runnerkit.job import Job, JobError

Window = tuple[int, int, int]  # (start b, end, first scored position), absolute positions
WindowLogits = Callable[[list[int], int, int], Any]


def windows(n: int, context: int, stride: int) -> list[Window]:
    """Windows [b, min(b + C, N)) for b = 0, S, 2S, ... up to the first that ends at N; each
    scores positions [max(previous end, b + 1), end): with stride < context every position
    1..N-1 once, with at least context - stride ids of history after the first window. (With
    stride == context a later window's first id would have no history and go unscored: the
    contract refuses it.)
    """
    if n < 2:
        raise JobError(f"the text has {n} ids; at least 2 are needed")
    if context < 2 or not 1 <= stride < context:
        raise JobError(f"context {context} and stride {stride}: need 2 <= context and 1 <= stride < context")
    found, start, previous_end = [], 0, 0
    while True:
        end = min(start + context, n)
        found.append((start, end, max(previous_end, start + 1)))
        if end == n:
            return found
        previous_end, start = end, start + stride


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_ids(job: Job) -> dict:
    """The ids file as checked JSON ({text, tokenizer, ids}); JobError for a wrong sha256 or content."""
    if not job.ids_path or not job.ids_sha256:
        raise JobError("the job is not a perplexity job (no workload.ids_path / ids_sha256)")
    try:
        data = Path(job.ids_path).read_bytes()
    except OSError as exc:
        raise JobError(f"cannot read the ids file {job.ids_path}: {exc}") from exc
    digest = sha256_hex(data)
    if digest != job.ids_sha256:
        raise JobError(f"ids file {job.ids_path}: sha256 {digest} does not match the job's ids_sha256 "
                       f"{job.ids_sha256}")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JobError(f"ids file {job.ids_path} is not JSON: {exc}") from exc
    ids = document.get("ids") if isinstance(document, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise JobError(f"ids file {job.ids_path}: 'ids' is not a list of non-negative integers")
    if len(ids) < 2:
        raise JobError(f"ids file {job.ids_path} has {len(ids)} ids; at least 2 are needed")
    windows(len(ids), job.context, job.stride)  # context/stride sane
    return document


def load_ids(job: Job) -> list[int]:
    """The text's ids, checked (sha256 of the file's bytes, >= 2 ids, context and stride)."""
    return list(read_ids(job)["ids"])


def check_context(context: int, context_length: int | None, vocab_size: int | None = None,
                  ids: list[int] | None = None) -> None:
    """Refuse a window longer than the model's context, or ids outside its vocabulary."""
    if context_length and context > context_length:
        raise JobError(f"perplexity context {context} exceeds the model's context length ({context_length})")
    if vocab_size and ids and max(ids) >= vocab_size:
        raise JobError(f"the text's ids reach {max(ids)}, outside the model's vocabulary of {vocab_size}")


def _score_numpy(rows, targets: list[int]) -> float:
    import numpy as np  # the runner's numpy: the rows are its arrays

    z = np.asarray(rows).astype(np.float64, copy=False)
    if z.ndim != 2 or z.shape[0] != len(targets):
        raise RuntimeError(f"window logits have shape {z.shape}, expected ({len(targets)}, vocab)")
    if z.shape[1] <= max(targets):
        raise RuntimeError(f"window logits have {z.shape[1]} columns; an id is {max(targets)}")
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    nll = lse - z[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)]
    if not np.all(np.isfinite(nll)):
        raise RuntimeError("the model gave non-finite logits")
    return float(nll.sum())


def _score_python(rows, targets: list[int]) -> float:
    rows = list(rows)
    if len(rows) != len(targets):
        raise RuntimeError(f"window logits have {len(rows)} rows, expected {len(targets)}")
    total = 0.0
    for row, target in zip(rows, targets):
        z = [float(x) for x in row]
        if target >= len(z):
            raise RuntimeError(f"window logits have {len(z)} columns; an id is {target}")
        m = max(z)
        nll = m + math.log(math.fsum(math.exp(x - m) for x in z)) - z[target]
        if not math.isfinite(nll):
            raise RuntimeError("the model gave non-finite logits")
        total += nll
    return total


def score(rows, targets: list[int]) -> float:
    """sum over rows of logsumexp(z) - z[target], in float64 (max-shifted)."""
    if hasattr(rows, "astype") and type(rows).__module__.split(".")[0] == "numpy":
        return _score_numpy(rows, targets)
    return _score_python(rows, targets)


def evaluate(ids: list[int], wins: list[Window], window_logits: WindowLogits) -> tuple[float, int]:
    """(mean_nll, scored): every window's forward pass and scoring (a window that scores nothing,
    which the contract's windows never have, gets no forward pass)."""
    total, scored = 0.0, 0
    for start, end, first in wins:
        count = end - first
        if count == 0:
            continue
        rows = window_logits(ids[start:end], first - 1 - start, count)
        total += score(rows, ids[first:end])
        scored += count
    return total / scored, scored


def warmup(ids: list[int], wins: list[Window], window_logits: WindowLogits, count: int) -> None:
    """``count`` untimed evaluations of the first window only."""
    for _ in range(count):
        evaluate(ids, wins[:1], window_logits)


def evaluation(index: int, ids: list[int], wins: list[Window], window_logits: WindowLogits) -> dict:
    """One timed evaluation of the whole text (time.perf_counter over every window, scoring included)."""
    clock = time.perf_counter
    start = clock()
    mean_nll, scored = evaluate(ids, wins, window_logits)
    time_s = clock() - start
    return {"index": index, "time_s": time_s, "windows": len(wins), "scored_tokens": scored, "mean_nll": mean_nll}


def repetitions(ids: list[int], wins: list[Window], window_logits: WindowLogits, count: int,
                around: Callable[[], ContextManager] | None = None) -> list[dict]:
    """``count`` timed evaluations; ``around()`` (e.g. a pause of the garbage collector) wraps each."""
    found = []
    for index in range(count):
        with (around or nullcontext)():
            found.append(evaluation(index, ids, wins, window_logits))
    return found


def result_fields(job: Job, ids: list[int], wins: list[Window], reps: list[dict]) -> dict:
    """The RESULT's ``perplexity`` object; its mean_nll is the first repetition's."""
    mean_nll = reps[0]["mean_nll"]
    return {"text": job.text, "ids_sha256": job.ids_sha256, "tokens": len(ids), "context": job.context,
            "stride": job.stride, "windows": len(wins), "scored_tokens": reps[0]["scored_tokens"],
            "mean_nll": mean_nll, "perplexity": math.exp(mean_nll)}


def describe(reps: list[dict]) -> str:
    """A log line's worth: the evaluations' mean NLL, perplexity and times."""
    first = reps[0]
    times = ", ".join(f"{r['time_s']:.3f}" for r in reps)
    return (f"{first['windows']} windows, {first['scored_tokens']} scored ids: mean NLL {first['mean_nll']:.6f}, "
            f"perplexity {math.exp(first['mean_nll']):.4f}; time_s {times}")
