"""Judge a RESULT: what a BATCH's container left behind becomes a status, a reason and a RESULT (pure but for
the bounded read of result.json).

A RESULT is read beneath its output folder (files/reading.py), checked against
schemas/result.schema.json, for plausibility (times no CPU engine can have measured) and for
consistency with its job (tokens, repetitions, threads); a CELL that fails ends ``invalid``
with the reason, never stopping the RUN.
"""

from __future__ import annotations

import enum
import math
import os
from pathlib import Path

from orchestrator import schemas
from orchestrator.files import reading
from orchestrator.matrix import bounds
from orchestrator.results import perplexity, threadcount
from orchestrator.results.reader import Result
from orchestrator.results.signals import describe_exit


class CellStatus(enum.Enum):
    """How a CELL ended."""

    OK = "ok"
    OOM = "oom"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    INVALID = "invalid"
    # Not run: the engine's IMAGE cannot be built, or cannot run on this host (its smoke run failed).
    UNAVAILABLE = "unavailable"


# What is read from a CELL's output folder and quoted back. The full log stays in the
# cell's runner.log; reasons, log tails and the terminal get at most these.
MAX_RESULT_BYTES = 32 * 2**20  # result.json (bounds.MAX_TOKEN_REPETITIONS keeps a real one under 15 MiB)


MAX_REASON_CHARS = 1000


LOG_TAIL_LINES = 20


MAX_LOG_LINE_CHARS = 300


MAX_VERSION_CHARS = 200  # engine.version goes into every TABLE row


# Plausibility: no CPU engine decodes a token in under a microsecond (the fastest CELL in
# docs/results-2026-11-26.md took 0.42 ms per token), and no forward pass is faster.
MIN_SECONDS_PER_TOKEN = 1e-6


# decode_s is defined as the sum of the inter-token latencies; allow float rounding and
# runners that time the two with separate clock reads.
DECODE_SUM_TOLERANCE = (1e-6, 1e-3)  # (absolute seconds, relative)


TTFT_TOLERANCE_S = 1e-9  # the first token is known only after the prompt's forward pass


def quote_log(log: str) -> str:
    """The tail of a runner's log as quoted in a record: the last lines, each cut to a bounded length."""
    lines = log.splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(reading.quote(line, MAX_LOG_LINE_CHARS) for line in lines)


def consistency_problems(job: dict, result: dict) -> list[str]:
    """What a schema-valid RESULT still gets wrong about its job (pure)."""
    problems = []
    workload = job["workload"]
    if result["cell_id"] != job["cell_id"]:
        problems.append(f"result is for cell {result['cell_id']}, not {job['cell_id']}")
    if len(result["repetitions"]) != job["repetitions"]:
        problems.append(f"{len(result['repetitions'])} repetitions reported, {job['repetitions']} asked for")
    threads_problem = threadcount.from_result(job["threads"], result).problem()
    if threads_problem:
        problems.append(threads_problem)
    if workload.get("kind") == "perplexity":
        return problems + perplexity.consistency_problems(workload, result)
    if "perplexity" in result:
        return problems + ["the job is a generation workload but the RESULT reports perplexity"]
    for rep in result["repetitions"]:
        where = f"repetition {rep['index']}"
        if rep["generated_tokens"] != workload["gen_tokens"] or len(rep["token_ids"]) != workload["gen_tokens"]:
            problems.append(f"{where}: {rep['generated_tokens']} tokens generated ({len(rep['token_ids'])} ids), "
                            f"{workload['gen_tokens']} asked for")
        if len(rep["inter_token_latencies_s"]) != rep["generated_tokens"] - 1:
            problems.append(f"{where}: {len(rep['inter_token_latencies_s'])} inter-token latencies for "
                            f"{rep['generated_tokens']} tokens (expected one fewer)")
        if workload["prompt_tokens"] and rep["prompt_tokens"] != workload["prompt_tokens"]:
            problems.append(f"{where}: prompt has {rep['prompt_tokens']} tokens, {workload['prompt_tokens']} asked for")
    return problems


def plausibility_problems(result: dict) -> list[str]:
    """Numbers a schema-valid RESULT cannot have measured (pure; tolerances above)."""
    problems = []
    version = Result(result).engine_version or ""
    if len(version) > MAX_VERSION_CHARS:
        problems.append(f"engine.version is {len(version)} characters long (at most {MAX_VERSION_CHARS})")
    times = [("load_time_s", result["load_time_s"])]
    scored = "perplexity" in result
    if scored:  # an evaluation's only time is its time_s; the checks below are of generation times
        times += perplexity.times(result)
    else:
        for rep in result["repetitions"]:
            times += [(f"repetition {rep['index']}: {k}", rep[k]) for k in ("prefill_s", "decode_s", "ttft_s")]
            times += [(f"repetition {rep['index']}: an inter-token latency", max(rep["inter_token_latencies_s"],
                                                                                  default=0))]
    longest = [(what, t) for what, t in times if not math.isfinite(t) or t > bounds.MAX_TIMEOUT_S]
    if longest or scored:
        return problems + [f"{what} is {t} s, longer than any cell may run ({bounds.MAX_TIMEOUT_S} s)"
                           for what, t in longest[:3]]
    absolute, relative = DECODE_SUM_TOLERANCE
    for rep in result["repetitions"]:
        where, steps = f"repetition {rep['index']}", rep["generated_tokens"] - 1
        if rep["prefill_s"] < MIN_SECONDS_PER_TOKEN:
            problems.append(f"{where}: prefill_s {rep['prefill_s']:g} s is shorter than any forward pass "
                            f"(at least {MIN_SECONDS_PER_TOKEN:g} s)")
        if steps > 0 and rep["decode_s"] < steps * MIN_SECONDS_PER_TOKEN:
            problems.append(f"{where}: decode_s {rep['decode_s']:g} s for {steps} tokens is under "
                            f"{MIN_SECONDS_PER_TOKEN:g} s per token: no CPU engine decodes that fast")
        total = math.fsum(rep["inter_token_latencies_s"])
        if abs(rep["decode_s"] - total) > max(absolute, relative * rep["decode_s"]):
            problems.append(f"{where}: decode_s {rep['decode_s']:g} s is not the sum of its inter-token latencies "
                            f"({total:g} s; tolerance {absolute:g} s or {relative:.1%})")
        if rep["ttft_s"] < rep["prefill_s"] - TTFT_TOLERANCE_S:
            problems.append(f"{where}: ttft_s {rep['ttft_s']:g} s is shorter than prefill_s {rep['prefill_s']:g} s: "
                            "the first token cannot be known before the prompt is processed")
    return problems


MIN_MEASURED_S = 1e-9  # no clock of a CELL resolves less than a nanosecond


def divisor_problems(result: dict) -> list[str]:
    """Times of a RESULT that every rate divides by and that no clock can have measured (above 0, below 1 ns):
    read back from elsewhere, such a time would make a rate infinite (pure)."""
    found = [("load_time_s", result["load_time_s"])]
    for rep in result["repetitions"]:
        found += [(f"repetition {rep.get('index')}: {k}", rep[k]) for k in ("prefill_s", "decode_s", "ttft_s", "time_s")
                  if isinstance(rep.get(k), (int, float))]
    return [f"{what} is {value:g} s, shorter than any clock measures ({MIN_MEASURED_S:g} s)"
            for what, value in found if 0 < abs(value) < MIN_MEASURED_S]


def judge(job: dict, exit_code: int | None, oom_killed: bool, timed_out: bool, log_tail: str,
          result_path: Path) -> tuple[CellStatus, str | None, dict | None]:
    """The CELL's status, the reason when not ok (at most MAX_REASON_CHARS), and its RESULT when valid.

    Never raises: whatever the runner left behind ends as a status with a short reason.
    """
    try:
        status, reason, result = _judge(job, exit_code, oom_killed, timed_out, log_tail, Path(result_path))
    except Exception as exc:  # a RESULT the checks below did not foresee must not stop the RUN
        status, reason, result = (CellStatus.INVALID, f"the orchestrator could not judge this cell's output: "
                                  f"{type(exc).__name__}: {exc}", None)
    return status, (reading.quote(reason, MAX_REASON_CHARS) if reason is not None else None), result


def _judge(job: dict, exit_code: int | None, oom_killed: bool, timed_out: bool, log_tail: str,
           result_path: Path) -> tuple[CellStatus, str | None, dict | None]:
    last = " | ".join(reading.quote(line, MAX_LOG_LINE_CHARS) for line in log_tail.strip().splitlines()[-3:])
    if timed_out:
        return CellStatus.TIMEOUT, "the cell ran past its timeout and was killed", None
    if oom_killed:
        return CellStatus.OOM, "killed by the kernel's OOM killer at the cell's memory limit", None
    if exit_code is None:
        return CellStatus.CRASHED, quote_log(log_tail.strip()) or "the container did not run", None
    if exit_code != 0:
        return CellStatus.CRASHED, describe_exit(exit_code) + (f"; last lines: {last}" if last else ""), None
    if not os.path.lexists(result_path):
        return CellStatus.INVALID, "the runner exited 0 but wrote no result.json", None
    try:  # never followed out of the output folder; bounded
        raw = reading.read_regular(result_path, MAX_RESULT_BYTES, contained=True)
    except reading.Refused as exc:
        return CellStatus.INVALID, f"result.json refused: {exc.detail}", None
    try:  # strict JSON within stated limits
        result = reading.parse_json(raw, "result.json")
    except reading.Refused as exc:
        return CellStatus.INVALID, f"result.json is not readable JSON: {exc.detail}", None
    found = schemas.problems("result", result)
    if found:
        detail = "; ".join(f"{p or '(top level)'}: {reading.quote(m)}" for p, m in found[:5])
        return CellStatus.INVALID, f"result.json fails schemas/result.schema.json: {detail}", None
    implausible = plausibility_problems(result)
    if implausible:
        return CellStatus.INVALID, "implausible result: " + "; ".join(implausible[:5]), None
    problems = consistency_problems(job, result)
    if problems:
        return CellStatus.INVALID, "; ".join(problems), result
    return CellStatus.OK, None, result
