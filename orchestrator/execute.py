"""Run one CELL in its own pinned, locked-down container and record how it ended."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from orchestrator import cgroup
from orchestrator.cpuset import Assignment
from orchestrator.dockerapi import ContainerSpec, Docker, Exit, Mount
from orchestrator.engines import ENGINES
from orchestrator.errors import DockerError
from orchestrator.images import Built
from orchestrator.models import Prepared
from orchestrator.plan import Cell
from orchestrator.results import judge, write_json_atomic, write_record

RUNNER_USER = "65534:65534"  # every runner runs as nobody, with no capabilities
PIDS_LIMIT = 512


def job_document(run_id: str, cell: Cell, model: Prepared, warmup: int, repetitions: int) -> dict:
    """The job file a runner reads (schemas/cell.schema.json)."""
    workload = cell.workload
    return {
        "schema_version": 1,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "engine": {"name": cell.engine, "options": cell.engine_options},
        "model": {"id": cell.model, "format": cell.format, "path": model.container_path, "sha256": model.sha256,
                  "tokenizer": model.container_tokenizer},
        "threads": cell.threads,
        "workload": {"name": workload.name, "prompt": workload.prompt, "prompt_tokens": workload.prompt_tokens,
                     "gen_tokens": workload.gen_tokens},
        "warmup": warmup,
        "repetitions": repetitions,
        "output_dir": "/out",
    }


def docker_time(text: str | None) -> float | None:
    """Seconds since the epoch from Docker's RFC 3339 timestamps (nanosecond fractions)."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text or "")
    if not match or text.startswith("0001-"):
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    whole = datetime.fromisoformat(match.group(1) + zone).timestamp()
    return whole + float(match.group(2) or 0)


def run_cell(docker: Docker, docker_info: dict, run_id: str, cell: Cell, image: Built, model: Prepared,
             placement: Assignment, cell_dir: Path, warmup: int, repetitions: int, memory_bytes: int,
             timeout_s: float, host_fingerprint: str) -> dict:
    """Run a CELL to the end, write its record.json atomically, and return the record."""
    job = job_document(run_id, cell, model, warmup, repetitions)
    job_dir, out_dir = cell_dir / "job", cell_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / "job.json", job)
    os.chmod(job_dir, 0o755)
    os.chmod(out_dir, 0o777)  # the runner writes as an unprivileged user
    driver = docker_info.get("cgroup_driver", "cgroupfs")
    version = int(docker_info.get("cgroup_version", "1"))
    parent = cgroup.parent_name(driver, run_id, cell.cell_id)
    spec = ContainerSpec(
        image=image.tag, name=f"orchestrate-{run_id}-{cell.cell_id}",
        labels={"orchestrate.run": run_id, "orchestrate.cell": cell.cell_id},
        mounts=(Mount(str(job_dir), "/job"), Mount(str(model.folder), "/models"),
                Mount(str(out_dir), "/out", read_only=False)),
        environment={"ORCHESTRATE_JOB": "/job/job.json"},
        cpuset_cpus=placement.cpuset_cpus, cpuset_mems=placement.cpuset_mems, mem_limit=memory_bytes,
        user=RUNNER_USER, cgroup_parent=parent, pids_limit=PIDS_LIMIT)
    try:
        try:
            ended = docker.run(spec, timeout_s)
        except DockerError as exc:  # recorded as a crashed CELL; the RUN goes on
            ended = Exit(None, False, False, None, None, f"orchestrate: the container did not run: {exc}")
        usage = cgroup.read_usage(driver, version, parent)
    finally:
        cgroup.remove(driver, version, parent)
    (cell_dir / "runner.log").write_text(ended.log)
    status, reason, result = judge(job, ended.exit_code, ended.oom_killed, ended.timed_out, ended.log,
                                   out_dir / "result.json")
    started, finished = docker_time(ended.started_at), docker_time(ended.finished_at)
    unmeasured = dict(usage["unmeasured"])
    if started is None or finished is None:
        unmeasured["wall_s"] = "the Docker engine reported no start or finish time"
    record = {
        "schema_version": 1,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "cell": {**cell.coordinates(), "warmup": warmup, "repetitions": repetitions},
        "status": status.value,
        "reason": reason,
        "test_double": ENGINES[cell.engine].test_only,
        "placement": {"cpus": placement.cpuset_cpus, "mems": placement.cpuset_mems,
                      "host_core_reserved": placement.host_core_reserved, "note": placement.note},
        "limits": {"memory_bytes": memory_bytes, "timeout_s": timeout_s, "pids": PIDS_LIMIT},
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
            "host_fingerprint": host_fingerprint,
        },
        "result": result,  # kept when schema-valid, even if inconsistent (status says so)
        "log_tail": "\n".join(ended.log.splitlines()[-20:]),
    }
    write_record(cell_dir / "record.json", record)
    return record
