"""Execute a PLAN as one RUN: build IMAGEs, prepare models, run every CELL, merge, report."""

from __future__ import annotations

import hashlib
import math
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from orchestrator import __version__, cpuset, execute, images, merge, models, plan, report, sysinfo
from orchestrator.dockerapi import Docker
from orchestrator.engines import ENGINES
from orchestrator.errors import PlacementError, UsageError
from orchestrator.matrix import Matrix
from orchestrator.results import CellStatus, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent


def new_run_id(cells: tuple[plan.Cell, ...], now: datetime | None = None) -> str:
    """UTC time to the second plus 6 hex digits of the PLAN and the clock (unique per RUN)."""
    now = now or datetime.now(timezone.utc)
    salt = ",".join(c.cell_id for c in cells) + str(time.time_ns())
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + hashlib.sha256(salt.encode()).hexdigest()[:6]


def git_commit() -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def place(cells: tuple[plan.Cell, ...], matrix: Matrix, topology) -> dict[str, cpuset.Assignment]:
    """Cores for every CELL, decided before anything runs so a bad thread count fails early."""
    placements = {}
    for cell in cells:
        try:
            placements[cell.cell_id] = cpuset.assign(cell.threads, topology, matrix.placement.policy,
                                                     matrix.placement.cpus)
        except PlacementError as exc:
            raise PlacementError(f"cell {cell.cell_id} ({cell.label()}): {exc}") from None
    return placements


def execute_run(matrix: Matrix, results_root: Path, progress: Callable[[str], None] = print) -> Path:
    """Run every CELL of the MATRIX; return the RUN folder. Failed cells are recorded, not raised."""
    cells = plan.expand(matrix)
    if not cells:
        raise UsageError(f"{matrix.source}: the include/exclude rules leave no cell to run")
    topology = sysinfo.topology()
    placements = place(cells, matrix, topology)
    docker = Docker()
    docker_info = docker.info()
    run_id = new_run_id(cells)
    run_dir = Path(results_root).resolve() / run_id  # absolute: it is bind-mounted
    run_dir.mkdir(parents=True, exist_ok=False)  # a finished RUN is never overwritten
    logs_dir = run_dir / "logs"
    progress(f"RUN {run_id}: {len(cells)} cells -> {run_dir}")
    host = sysinfo.snapshot(docker_info)
    commit, dirty = git_commit()
    record = {
        "schema_version": 1, "run_id": run_id, "status": "running",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "finished_at": None,
        "orchestrator": {"version": __version__, "git_commit": commit, "git_dirty": dirty},
        "matrix": {"path": matrix.source, "text": matrix.raw, "expanded": [plan.to_json(c) for c in cells]},
        "plan_order": [c.cell_id for c in cells], "images": {}, "models": {}, "host": host, "counts": {},
        "error": None,
    }
    write_json_atomic(run_dir / "run.json", record)
    try:
        built = {}
        for engine in dict.fromkeys(c.engine for c in cells):
            image = images.ensure(docker, ENGINES[engine].image_dir, logs_dir, progress)
            built[engine] = image
            record["images"][engine] = {"tag": image.tag, "id": image.id, "base": image.base, "base_id": image.base_id,
                                        "labels": image.labels, "build_log": image.log_path, "rebuilt": image.rebuilt}
        prepared = {}
        wanted: dict[str, list[str]] = {}
        for cell in cells:
            wanted.setdefault(cell.model, []).append(cell.format)
        for model_id, formats in wanted.items():
            for fmt, item in models.prepare(docker, model_id, list(dict.fromkeys(formats)), logs_dir, progress).items():
                prepared[(model_id, fmt)] = item
                record["models"][f"{model_id}/{fmt}"] = {"sha256": item.sha256, "size": item.size,
                                                         "path": str(item.folder / item.relpath)}
        write_json_atomic(run_dir / "run.json", record)
        counts = {status.value: 0 for status in CellStatus}
        for number, cell in enumerate(cells, 1):
            placement = placements[cell.cell_id]
            progress(f"[{number}/{len(cells)}] {cell.cell_id} {cell.label()} on CPUs {placement.cpuset_cpus} ...")
            started = time.monotonic()
            done = execute.run_cell(docker, docker_info, run_id, cell, built[cell.engine],
                                    prepared[(cell.model, cell.format)], placement, run_dir / "cells" / cell.cell_id,
                                    matrix.warmup, matrix.repetitions, matrix.memory_limit_bytes(), matrix.timeout_s,
                                    host["fingerprint"])
            counts[done["status"]] += 1
            progress(f"    {done['status']} in {time.monotonic() - started:.1f}s" + _brief(done))
        record["counts"] = counts
        record["status"] = "finished"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        removed = docker.remove_labelled({"orchestrate.run": run_id})
        progress(f"interrupted: removed {len(removed)} container(s) of RUN {run_id}")
        raise
    except Exception as exc:
        record["status"] = "failed"
        record["error"] = str(exc)
        raise
    finally:
        record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json_atomic(run_dir / "run.json", record)
        if any((run_dir / "cells").glob("*/record.json")):
            report.write(run_dir)
    return run_dir


def _brief(record: dict) -> str:
    if record["status"] != "ok":
        return f": {record['reason']}"
    rates = sorted(r for r in map(merge.generation_rate, record["result"]["repetitions"]) if not math.isnan(r))
    return f", median generation {rates[len(rates) // 2]:.1f} tok/s" if rates else ""
