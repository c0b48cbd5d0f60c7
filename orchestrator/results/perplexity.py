"""Perplexity RESULTs: the windows every runner must score and how a perplexity RESULT is judged (pure).

The contract (docs/contract.md): windows ``[b, min(b + C, N))`` for ``b = 0, S, 2S, ...`` up
to the first that ends at ``N``; each scores the ids after the previous window's end, so ids
1..N-1 are each scored once. merge/scores.py turns judged perplexity records into TABLE columns.
"""

from __future__ import annotations

import math

NAN = float("nan")




NLL_REPEAT_TOLERANCE = 1e-6  # relative: the same ids and weights give the same mean NLL every repetition


def windows(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first scored position) of every window over ``n`` ids."""
    out, start, previous_end = [], 0, 0
    while True:
        end = min(start + context, n)
        out.append((start, end, max(previous_end, start + 1)))
        if end == n:
            return out
        previous_end, start = end, start + stride


def is_perplexity(result: dict | None) -> bool:
    """True for a perplexity RESULT (a record's ``result``; None for a CELL that left none)."""
    return isinstance(result, dict) and "perplexity" in result


def consistency_problems(workload: dict, result: dict) -> list[str]:
    """What a schema-valid perplexity RESULT gets wrong about its job's workload."""
    if "perplexity" not in result:
        return ["the job is a perplexity workload but the RESULT has no 'perplexity' figures"]
    figures, problems = result["perplexity"], []
    for key in ("text", "ids_sha256", "context", "stride"):
        if figures[key] != workload[key]:
            problems.append(f"perplexity.{key} is {figures[key]!r}, the job says {workload[key]!r}")
    if problems:
        return problems
    expected = windows(figures["tokens"], figures["context"], figures["stride"])
    scored = figures["tokens"] - 1
    if figures["windows"] != len(expected) or figures["scored_tokens"] != scored:
        problems.append(f"{figures['windows']} windows and {figures['scored_tokens']} scored ids reported; "
                        f"{figures['tokens']} ids in windows of {figures['context']} every {figures['stride']} "
                        f"give {len(expected)} windows and {scored} scored ids")
    first = result["repetitions"][0]["mean_nll"] if result["repetitions"] else None
    for rep in result["repetitions"]:
        where = f"repetition {rep['index']}"
        if rep["windows"] != figures["windows"] or rep["scored_tokens"] != figures["scored_tokens"]:
            problems.append(f"{where}: {rep['windows']} windows, {rep['scored_tokens']} scored ids; the RESULT "
                            f"says {figures['windows']} and {figures['scored_tokens']}")
        if abs(rep["mean_nll"] - first) > NLL_REPEAT_TOLERANCE * max(abs(first), 1e-12):
            problems.append(f"{where}: mean NLL {rep['mean_nll']!r} differs from repetition 0's {first!r}: the same "
                            "ids must score the same every repetition")
    if first is not None and abs(figures["mean_nll"] - first) > NLL_REPEAT_TOLERANCE * max(abs(first), 1e-12):
        problems.append(f"perplexity.mean_nll {figures['mean_nll']!r} is not repetition 0's {first!r}")
    if abs(figures["perplexity"] - math.exp(figures["mean_nll"])) > 1e-6 * figures["perplexity"]:
        problems.append(f"perplexity {figures['perplexity']!r} is not exp(mean_nll) = {math.exp(figures['mean_nll'])!r}")
    return problems


def times(result: dict) -> list[tuple[str, float]]:
    """(what, seconds) of every time a perplexity RESULT reports, for the plausibility bounds."""
    return [(f"repetition {rep['index']}: time_s", rep["time_s"]) for rep in result["repetitions"]]
