"""Resume a RUN: `orchestrate run --resume RUN_DIR` finishes an interrupted or killed RUN in its own folder.

The MATRIX, shard and seed come from the RUN's run.json, so the PLAN and the shuffled order
are the ones the RUN started with. CELLs whose record is ok and complete are not run again;
batches already on disk are kept (rounds.py); CELLs that ended not ok run again. run.json
lists each session (who ran, when, which batches) under ``sessions``.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import ResultError, UsageError
from orchestrator.execute import ownership
from orchestrator.host import cgroup
from orchestrator.matrix import matrixfile
from orchestrator.plan import planner
from orchestrator.results.recordfiles import read_run_file
from orchestrator.results.runreader import RunDocument


def load(run_dir: Path) -> tuple[dict, matrixfile.Matrix, planner.Shard | None]:
    """run.json of a RUN to resume, its MATRIX (parsed from the stored text) and its shard."""
    run_dir = Path(run_dir).resolve()
    if ownership.owner_alive(run_dir):
        raise ResultError(f"{run_dir} is still being run by another orchestrate process "
                          f"({ownership.describe_owner(run_dir)}); it cannot be resumed while it runs")
    ownership.settle(run_dir)  # a killed RUN still says "running": mark it interrupted first
    run = read_run_file(run_dir)
    view = RunDocument(run)
    if view.status == "finished" and not view.counts.get("unavailable") and \
            all(v == 0 for k, v in view.counts.items() if k != "ok"):
        raise UsageError(f"{run_dir}: the RUN finished with every CELL ok; there is nothing to resume")
    loaded = matrixfile.parse(view.matrix_text, view.matrix_path)
    shard = planner.Shard(*view.shard) if view.shard else None
    return run, loaded, shard


def seed_of(loaded: matrixfile.Matrix, previous: dict | None) -> tuple[int, str]:
    """The RUN's seed and where it came from: a resumed RUN's own, the MATRIX's, or drawn now."""
    run = RunDocument(previous) if previous else None
    if run is not None and run.seed is not None:
        return run.seed, run.seed_source
    if loaded.seed is not None:
        return loaded.seed, "MATRIX"
    return secrets.randbelow(2 ** 32), "drawn at random when the RUN started"


def carry_over(previous: dict, fresh: dict) -> dict:
    """run.json for a resumed session: the RUN's identity and history, this session's host and images.

    Refuses a host whose fingerprint differs from the RUN's (figures from two machines do not merge).
    """
    if previous["host"].get("fingerprint") != fresh["host"].get("fingerprint"):
        raise UsageError(f"RUN {previous['run_id']} ran on host {previous['host'].get('fingerprint')}, this host is "
                         f"{fresh['host'].get('fingerprint')}: resume it on its own machine, or start a new RUN")
    kept = {key: previous[key] for key in ("run_id", "started_at", "matrix", "plan_order", "shard", "sampling")
            if key in previous}
    return {**fresh, **kept, "status": "running", "error": None, "sessions": list(previous.get("sessions") or [
        {"session": 1, "pid": None, "host": None, "started_at": previous["started_at"],
         "finished_at": previous.get("finished_at"), "resumed": False, "batches": None,
         "note": "written before sessions were recorded"}])}


def new_session(record: dict, resumed: bool) -> dict:
    """Append this process's session to run.json's ``sessions`` and return it."""
    sessions = record.setdefault("sessions", [])
    session = {"session": len(sessions) + 1, "pid": os.getpid(), "host": socket.gethostname(),
               "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "finished_at": None,
               "resumed": resumed, "batches": [], "rerun": []}
    sessions.append(session)
    return session


def clear_leftovers(docker, docker_info: dict, run_id: str, progress) -> None:
    """Remove the containers and CELL cgroups a killed session of the RUN left behind (as `clean --run`)."""
    removed = docker.remove_labelled({"orchestrate.run": run_id})
    driver = docker_info.get("cgroup_driver") or "cgroupfs"
    version = int(docker_info.get("cgroup_version") or 1)
    parents = cgroup.leftovers(driver, version, run_id)
    for parent in parents:
        cgroup.remove(driver, version, parent)
    if removed or parents:
        progress(f"resume: removed {len(removed)} container(s) and {len(parents)} cgroup(s) left by the killed session")
