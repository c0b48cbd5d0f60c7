"""Perplexity CELLs: the windows every runner must score, how a RESULT is judged, and the TABLE's columns.

Pure functions over plain data. The contract (docs/contract.md): windows ``[b, min(b + C, N))``
for ``b = 0, S, 2S, ...`` up to the first that ends at ``N``; each scores the ids after the
previous window's end, so ids 1..N-1 are each scored once. F32 CELLs (gguf-f32, safetensors,
onnx) must give a perplexity within 0.5 % of their reference (llama.cpp's gguf-f32 CELL of the
same model and workload, else the first F32 CELL); quantized CELLs show their increase over
their F32 parent (gguf-f32 of the same engine, else of any engine).
"""

from __future__ import annotations

import math

from orchestrator import stats
from orchestrator.catalogue import FULL_PRECISION

NAN = float("nan")
MAX_RELATIVE = 0.005  # F32 engines agree within 0.5 % relative
NLL_REPEAT_TOLERANCE = 1e-6  # relative: the same ids and weights give the same mean NLL every repetition
COLUMNS = ("perplexity", "ppl_mean_nll", "ppl_scored_tokens", "ppl_windows", "ppl_time_s_median", "ppl_tps_median",
           "ppl_reference", "ppl_vs_reference", "ppl_agreement")


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


def cell_columns(record: dict) -> dict:
    """The perplexity columns of one CELL's row (agreement filled in by ``agreement``); NaN/None otherwise."""
    out = {c: None for c in COLUMNS}
    out.update(perplexity=NAN, ppl_mean_nll=NAN, ppl_time_s_median=NAN, ppl_tps_median=NAN, ppl_vs_reference=NAN)
    result = record.get("result") if record["status"] == "ok" else None
    if not result or "perplexity" not in result:
        return out
    figures = result["perplexity"]
    median = stats.median(sorted(rep["time_s"] for rep in result["repetitions"]))
    out.update(perplexity=figures["perplexity"], ppl_mean_nll=figures["mean_nll"],
               ppl_scored_tokens=figures["scored_tokens"], ppl_windows=figures["windows"], ppl_time_s_median=median,
               ppl_tps_median=figures["scored_tokens"] / median if median > 0 else NAN)
    return out


def rates(record: dict) -> list[float]:
    """Scored ids per second of every repetition of a perplexity record (for adaptive repetitions)."""
    return [rep["scored_tokens"] / rep["time_s"] for rep in record["result"]["repetitions"] if rep["time_s"] > 0]


def agreement(ok: list[dict], reference_of) -> dict[str, dict]:
    """cell id -> {ppl_reference, ppl_vs_reference, ppl_agreement} for ok perplexity records (linear).

    ``reference_of(record)`` is merge.references over them: an F32 CELL's reference, a quantized
    CELL's F32 parent, None for the reference itself. F32 CELLs: 'ok' within 0.5 % of the
    reference, else 'DISAGREE'; quantized CELLs: 'info', with their relative increase.
    """
    out = {}
    for record in ok:
        full = record["cell"]["format"] in FULL_PRECISION
        reference = reference_of(record)
        if reference is None:
            out[record["cell_id"]] = {"ppl_reference": None, "ppl_vs_reference": NAN,
                                      "ppl_agreement": "reference" if full else "no F32 parent in this RUN"}
            continue
        mine, theirs = record["result"]["perplexity"]["perplexity"], reference["result"]["perplexity"]["perplexity"]
        relative = mine / theirs - 1
        verdict = ("ok" if abs(relative) <= MAX_RELATIVE else "DISAGREE") if full else "info"
        out[record["cell_id"]] = {"ppl_reference": reference["cell_id"], "ppl_vs_reference": relative,
                                  "ppl_agreement": verdict}
    return out
