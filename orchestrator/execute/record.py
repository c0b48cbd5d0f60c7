"""The CELL record: what the orchestrator stores for one CELL (schemas/record.schema.json).

Pure assembly from plain data: the CELL's settings, how its container ended, what its
cgroup measured, the judged RESULT and the threads verdict. execute.py runs the container
and hands these here; results.py validates and writes the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.host import platforms
from orchestrator.host.cpuset import Assignment
from orchestrator.host.dockerapi import Exit
from orchestrator.images.imagebuild import Built
from orchestrator.models.modelstore import Prepared
from orchestrator.models.texts import EvalIds
from orchestrator.plan.planner import Cell
from orchestrator.results import threadcount
from orchestrator.results.judge import CellStatus

PIDS_LIMIT = 512
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class CellSettings:
    """Everything one CELL runs with: what, on which image and model, where, and within which limits."""

    run_id: str
    cell: Cell
    image: Built
    model: Prepared
    placement: Assignment
    warmup: int
    repetitions: int
    memory_bytes: int
    timeout_s: float
    host_fingerprint: str
    test_double: bool = False
    eval_ids: EvalIds | None = None  # a perplexity CELL's token ids (texts.ids_for)


@dataclass(frozen=True)
class Judged:
    """How results.judge judged the CELL."""

    status: CellStatus
    reason: str | None
    result: dict | None


def docker_time(text: str | None) -> float | None:
    """Seconds since the epoch from Docker's RFC 3339 timestamps (nanosecond fractions)."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text or "")
    if not match or text.startswith("0001-"):
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    whole = datetime.fromisoformat(match.group(1) + zone).timestamp()
    return whole + float(match.group(2) or 0)


def threads_verdict(settings: CellSettings, result: Mapping[str, Any] | None) -> dict:
    """The record's 'threads': the one rule's verdict over the RESULT's raw figures."""
    if result is None:
        return threadcount.Verdict(settings.cell.threads, None, "none", (), None, None).to_json()
    return threadcount.from_result(settings.cell.threads, result).to_json()


def assemble(settings: CellSettings, ended: Exit, usage: Mapping[str, Any], judged: Judged,
             host_architecture: str | None = None) -> dict:
    """The CELL record (not yet validated; results.write_record does that); ``host_architecture`` is the
    Docker engine's, which says whether the IMAGE ran under emulation."""
    cell, image, model, placement = settings.cell, settings.image, settings.model, settings.placement
    started, finished = docker_time(ended.started_at), docker_time(ended.finished_at)
    unmeasured = dict(usage["unmeasured"])
    if started is None or finished is None:
        unmeasured["wall_s"] = "the Docker engine reported no start or finish time"
    result = judged.result
    return {
        "schema_version": 1,
        "run_id": settings.run_id,
        "cell_id": cell.cell_id,
        "cell": {**cell.coordinates(), "warmup": settings.warmup, "repetitions": settings.repetitions},
        "status": judged.status.value,
        "reason": judged.reason,
        "test_double": settings.test_double,
        "placement": {"cpus": placement.cpuset_cpus, "mems": placement.cpuset_mems,
                      "host_core_reserved": placement.host_core_reserved, "note": placement.note},
        "limits": {"memory_bytes": settings.memory_bytes, "timeout_s": settings.timeout_s, "pids": PIDS_LIMIT},
        "outside": {
            "wall_s": finished - started if started is not None and finished is not None else None,
            "peak_memory_bytes": usage["peak_memory_bytes"],
            "cpu_seconds": usage["cpu_seconds"],
            "exit_code": ended.exit_code,
            "oom_killed": ended.oom_killed,
            "timed_out": ended.timed_out,
            "method": usage["method"],
            "unmeasured": unmeasured,
        },
        "provenance": {
            "image": {"tag": image.tag, "id": image.id, "base": image.base, "base_id": image.base_id},
            "engine_version": (result or {}).get("engine", {}).get("version")
            or image.labels.get("orchestrate.engine.version"),
            "model": {"id": cell.model, "format": cell.format, "sha256": model.sha256},
            "host_fingerprint": settings.host_fingerprint,
        },
        "threads": threads_verdict(settings, result),
        "emulation": platforms.emulation(image.architecture, host_architecture),
        "result": result,  # kept when schema-valid, even if inconsistent (status says so)
        "log_tail": "\n".join(ended.log.splitlines()[-LOG_TAIL_LINES:]),
    }
