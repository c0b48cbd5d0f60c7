"""Smoke runs: before the first CELL, check that each engine IMAGE runs on this host at all.

An IMAGE whose machine code does not run on this CPU (SIGILL), or whose runner cannot
start here, would otherwise fail once per CELL after minutes of work. One tiny job per
engine x model format of the RUN (one thread, a short prompt, a few tokens) finds that up
front; its CELLs are then recorded as ``unavailable`` with the reason and never started.
A passed smoke run is cached per IMAGE id, host CPU and model file, so later RUNs skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.execute import record
from orchestrator.execute.record import CellSettings, Judged
from orchestrator.files import writing
from orchestrator.host.dockerapi import Exit
from orchestrator.matrix.matrixfile import Workload
from orchestrator.plan import planner
from orchestrator.results.judge import CellStatus
from orchestrator.results.recordfiles import write_record

# The smoke job: short enough to take seconds, long enough to run prefill and decode kernels.
SMOKE_WORKLOAD = Workload(name="smoke", prompt="Once upon a time", gen_tokens=4, prompt_tokens=8)
SMOKE_TIMEOUT_S = 300.0
# Only these outcomes say the IMAGE cannot run here. An OOM or a timeout depends on the
# CELL's size and limits, not on the image and the host, so the CELLs still run.
BLOCKING = (CellStatus.CRASHED, CellStatus.INVALID)


@dataclass(frozen=True)
class Outcome:
    """What the smoke run of one engine x format found on this host."""

    engine: str
    format: str
    ok: bool
    reason: str | None
    cached: bool
    folder: str | None  # where the smoke CELL's job, log and record are (None when cached)


def cache_root() -> Path:
    """ORCHESTRATE_SMOKE_CACHE, else <XDG cache>/orchestrate/smoke."""
    if os.environ.get("ORCHESTRATE_SMOKE_CACHE"):
        return Path(os.environ["ORCHESTRATE_SMOKE_CACHE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "orchestrate" / "smoke"


def cpu_identity(host: dict) -> dict:
    """The host facts that decide whether machine code runs: architecture, CPU model and flags."""
    cpu = host.get("cpu", {})
    return {"machine": host.get("machine"), "brand": cpu.get("brand"), "family": cpu.get("family"),
            "model": cpu.get("model"), "flags": cpu.get("flags")}


def cache_key(image_id: str, host: dict, model_sha256: str) -> str:
    """Stable key of one smoke run: IMAGE id x host CPU x model file."""
    text = json.dumps({"image": image_id, "cpu": cpu_identity(host), "model": model_sha256}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def representatives(cells: Iterable[planner.Cell], sizes: dict[tuple[str, str], int]) -> list[planner.Cell]:
    """One smoke CELL per engine x format: the smallest model of that format in the PLAN, the
    engine's default options (the question is whether the IMAGE runs here, not an option)."""
    chosen: dict[tuple[str, str], planner.Cell] = {}
    for cell in cells:
        key = (cell.engine, cell.format)
        best = chosen.get(key)
        if best is None or sizes[(cell.model, cell.format)] < sizes[(best.model, best.format)]:
            chosen[key] = cell
    smoke = []
    for cell in chosen.values():
        one = replace(cell, engine_options_json="{}", threads=1, workload=SMOKE_WORKLOAD, cell_id="")
        smoke.append(replace(one, cell_id=planner.cell_id(one.coordinates())))
    return smoke


def blocked_reason(outcome: Outcome, image_tag: str) -> str:
    """The reason recorded on every CELL that a failed smoke run keeps from starting."""
    return (f"not run: the smoke run of {image_tag} ({outcome.engine}, {outcome.format}) on this host failed: "
            f"{outcome.reason}")


def not_run_record(settings: CellSettings, reason: str) -> dict:
    """The record of a CELL that was never started (its IMAGE cannot run or be built here)."""
    ended = Exit(None, False, False, None, None, "")
    why = "the CELL was not started: " + reason
    usage = {"peak_memory_bytes": None, "cpu_seconds": None, "method": "none: the CELL was not started",
             "unmeasured": {"peak_memory_bytes": why, "cpu_seconds": why}}
    return record.assemble(settings, ended, usage, Judged(CellStatus.UNAVAILABLE, reason, None))


def write_not_run(settings: CellSettings, cell_dir: Path, reason: str) -> dict:
    """Write (atomically) and return the record of a CELL that was never started."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    document = not_run_record(settings, reason)
    write_record(cell_dir / "record.json", document)
    return document


def check(run_cell: Callable[[CellSettings, Path], dict], base: CellSettings, cells: Iterable[planner.Cell],
          images: dict, models: dict, host: dict, smoke_dir: Path,
          progress: Callable[[str], None] = print) -> dict[tuple[str, str], Outcome]:
    """Smoke-run each engine x format of the PLAN; the outcomes keyed by (engine, format).

    ``run_cell(settings, cell_dir)`` runs one CELL (execute.run_cell bound to Docker);
    ``base`` carries the RUN's id, placement and limits; ``images`` maps engine -> Built,
    ``models`` maps (model, format) -> Prepared.
    """
    sizes = {key: item.size for key, item in models.items()}
    outcomes = {}
    for cell in representatives(cells, sizes):
        image, model = images[cell.engine], models[(cell.model, cell.format)]
        key = (cell.engine, cell.format)
        marker = cache_root() / f"{cache_key(image.id, host, model.sha256)}.json"
        if marker.is_file():
            outcomes[key] = Outcome(cell.engine, cell.format, True, None, True, None)
            continue
        progress(f"smoke run: {cell.engine} {cell.model}/{cell.format} on this host ...")
        settings = replace(base, cell=cell, image=image, model=model, warmup=0, repetitions=1,
                           timeout_s=min(base.timeout_s, SMOKE_TIMEOUT_S))
        folder = smoke_dir / cell.cell_id
        done = run_cell(settings, folder)
        status = CellStatus(done["status"])
        if status in BLOCKING:
            outcomes[key] = Outcome(cell.engine, cell.format, False, done["reason"], False, str(folder))
            progress(f"    FAILED: {done['reason']}")
            continue
        outcomes[key] = Outcome(cell.engine, cell.format, True, None, False, str(folder))
        if status is CellStatus.OK:
            writing.write_json(marker, {"image": {"tag": image.tag, "id": image.id}, "cpu": cpu_identity(host),
                                       "model_sha256": model.sha256, "record": str(folder / "record.json")})
            progress("    ok")
        else:
            progress(f"    {status.value} (not held against the IMAGE): {done['reason']}")
    return outcomes
