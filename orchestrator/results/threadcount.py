"""Threads used: one rule, applied by the orchestrator to the raw per-thread CPU seconds a runner reports.

Runners do not decide how many threads an engine ran with. They report, for every thread
of the processes that run the engine (the runner's own process, or a server's process
tree), the CPU seconds it ran during the timed repetitions, plus whatever thread count
the engine itself reports. :func:`derive` turns that into one verdict, the same for every
ENGINE. More threads than the CELL asked for make the CELL invalid (its figures are not
for that thread count); fewer is a finding about the engine, not a broken CELL: an engine
may leave threads idle on a small model, or ignore its thread setting. The CELL stays ok
and the verdict's note (shown in the TABLE as threads used) says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A thread counts as used when it ran at least this share of the busiest thread's CPU time
# over the timed repetitions: compute threads do comparable shares of the work, while
# helper threads (loggers, a tokenizer pool, a blocked main thread) stay far below.
ACTIVE_SHARE = 0.10
# ... and at least this much CPU time: a helper's cost per request is fixed, so on a CELL
# with very little work it can pass the share (a llama-server CELL of one generated token,
# the conformance suite's fewest, ran 8.1 ms on its compute thread and 0.9 ms, 11 %, on its
# HTTP thread on a Zen 5 EPYC), while a compute thread of a 2-thread CELL there ran 8-40 ms.
ACTIVE_MIN_S = 0.005
# Below this much CPU time on the busiest thread there is nothing to count from (no thread
# reaches ACTIVE_MIN_S); the engine's own figure is used instead.
MIN_BUSIEST_S = ACTIVE_MIN_S
RULE = (f"threads whose CPU time over the timed repetitions is >= {ACTIVE_SHARE:.0%} of the busiest thread's "
        f"and >= {ACTIVE_MIN_S * 1000:g} ms, "
        f"over every thread of the engine's processes; when the busiest ran under {MIN_BUSIEST_S * 1000:g} ms, "
        f"the engine's own figure")


@dataclass(frozen=True)
class ThreadCpu:
    """CPU seconds one thread ran during the timed repetitions."""

    tid: int
    cpu_s: float
    name: str = ""
    pid: int | None = None  # the process it belongs to, when the runner reports several


@dataclass(frozen=True)
class Verdict:
    """How many threads a CELL's engine ran with, and from what."""

    requested: int
    used: int | None  # None: nothing to count from
    basis: str  # "per-thread CPU", "engine" or "none"
    counted: tuple[int, ...]  # tids of the threads counted as used
    engine_reported: int | None
    busiest_cpu_s: float | None

    def to_json(self) -> dict:
        return {"requested": self.requested, "used": self.used, "basis": self.basis, "rule": RULE,
                "counted_tids": list(self.counted), "engine_reported": self.engine_reported,
                "busiest_cpu_s": self.busiest_cpu_s, "note": self.shortfall()}

    def problem(self) -> str | None:
        """Why the verdict makes the CELL invalid (no count, or more threads than asked), or None."""
        if self.used is None:
            return "threads used cannot be derived: the result has no per-thread CPU times and no engine figure"
        if self.used > self.requested:
            return (f"the engine ran with {self.used} threads ({self.basis}: {len(self.counted) or self.used} "
                    f"counted by the rule; engine reported {self.engine_reported}), the cell asked for "
                    f"{self.requested}")
        return None

    def shortfall(self) -> str | None:
        """A note when the engine did real work on fewer threads than the CELL gave it (the CELL stays ok)."""
        if self.used is None or self.used >= self.requested:
            return None
        return (f"the engine did a comparable share of the work on {self.used} of the {self.requested} threads it "
                f"was given (engine reported {self.engine_reported}); the others stayed below "
                f"{ACTIVE_SHARE:.0%} of the busiest thread's CPU time")


def derive(requested: int, per_thread: Sequence[ThreadCpu], engine_reported: int | None) -> Verdict:
    """The one rule: count the threads that did a comparable share of the work (pure)."""
    busiest = max((t.cpu_s for t in per_thread), default=0.0)
    if per_thread and busiest >= MIN_BUSIEST_S:
        floor = max(ACTIVE_SHARE * busiest, ACTIVE_MIN_S)
        counted = tuple(sorted(t.tid for t in per_thread if t.cpu_s >= floor))
        return Verdict(requested, len(counted), "per-thread CPU", counted, engine_reported, busiest)
    if engine_reported is not None:
        return Verdict(requested, engine_reported, "engine", (), engine_reported, busiest if per_thread else None)
    return Verdict(requested, None, "none", (), None, busiest if per_thread else None)


def from_result(requested: int, result: Mapping[str, Any]) -> Verdict:
    """The verdict for a schema-valid RESULT's ``threads`` object, against the CELL's thread count."""
    threads = result["threads"]
    per_thread = [ThreadCpu(int(t["tid"]), float(t["cpu_s"]), t.get("name", ""), t.get("pid"))
                  for t in threads.get("per_thread") or []]
    return derive(requested, per_thread, threads.get("engine_reported"))
