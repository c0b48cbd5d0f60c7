"""Run a RUN's CELLs as batches: rounds in a seeded, shuffled order, top-ups until the CV target, resumable.

Each batch of a CELL lives in ``cells/<cell-id>/batches/<k>/`` (its container's job, output,
log and record.json) with ``batch.json`` beside (round, position in the RUN, session, noise
and frequency measured while it ran). After every batch the CELL's merged record.json is
rewritten (sampling.complete false until the CELL is done). A batch folder without both
files was cut short and runs again; so a RUN killed at any point resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ResultError
from orchestrator.execute import batchmerge, sampling
from orchestrator.files import beneath, reading, writing
from orchestrator.host import noise
from orchestrator.plan.planner import Cell
from orchestrator.results.reader import Record
from orchestrator.results.recordfiles import read_record, write_record

MAX_BATCH_BYTES = 1 << 20  # batch.json: round, position, session, noise and frequency of one batch

RunBatch = Callable[[Cell, int, Path], dict]  # (cell, repetitions, batch folder) -> that batch's record


@dataclass(frozen=True)
class Batch:
    """One finished batch of a CELL: what batch.json says, and its record."""

    meta: dict
    record: dict

    @property
    def view(self) -> Record:
        return Record.read(self.record)


def _document(folder: Path, run_dir: Path) -> dict | None:
    """A CELL's (or batch's) record.json, bounded and validated, read beneath the RUN folder; None if unreadable."""
    try:
        return read_record(folder / "record.json", run_dir)
    except ResultError:
        return None


def _record(folder: Path, run_dir: Path) -> Record | None:
    document = _document(folder, run_dir)
    return Record.read(document) if document is not None else None


def _batch_meta(path: Path, run_dir: Path) -> dict | None:
    try:
        meta = reading.parse_json(reading.read_regular(path / "batch.json", MAX_BATCH_BYTES, root=run_dir),
                                  str(path / "batch.json"))
    except reading.Refused:
        return None
    return meta if isinstance(meta, dict) else None


def cell_done(cell_dir: Path) -> bool:
    """Whether a CELL has an ok record whose sampling is complete (a record without sampling: ok is enough)."""
    record = _record(cell_dir, cell_dir.parent.parent)  # <run>/cells/<cell-id>
    return record is not None and record.ok and record.sampling.complete


def _folders(folder: Path) -> list[Path]:
    """The real sub-folders of ``folder`` (links are not followed, and not listed)."""
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def load_batches(cell_dir: Path) -> list[Batch]:
    """The finished batches of a CELL in batch order; folders of batches cut short (or unreadable) are removed."""
    found = []
    folders = [p for p in _folders(cell_dir / "batches") if p.name.isdigit() and len(p.name) < 10]
    for path in sorted(folders, key=lambda p: int(p.name)):
        meta, record = _batch_meta(path, cell_dir.parent.parent), _document(path, cell_dir.parent.parent)
        if meta is None or record is None:
            beneath.remove(path)
            continue
        found.append(Batch(meta, record))
    return found


def last_position(cells_dir: Path, key: str = "position") -> int:
    """The highest position (or round) of any finished batch of the RUN (0 before the first)."""
    found = 0
    for cell_dir in _folders(cells_dir):
        for batch in _folders(cell_dir / "batches"):
            value = (_batch_meta(batch, cells_dir.parent) or {}).get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                found = max(found, value)
    return found


def prepare(cells: tuple[Cell, ...], cells_dir: Path) -> tuple[set[str], dict[str, list[Batch]], list[dict]]:
    """Before running: CELLs already done, the finished batches of the others, and CELLs cleared for a rerun.

    A CELL whose record is not ok is run again from its first batch (its old record is reported).
    """
    done, batches, cleared = set(), {}, []
    for cell in cells:
        cell_dir = cells_dir / cell.cell_id
        if cell_done(cell_dir):
            done.add(cell.cell_id)
            continue
        old = _record(cell_dir, cells_dir.parent)
        if old is not None and not old.ok:
            cleared.append({"cell_id": cell.cell_id, "status": old.status, "reason": old.reason})
            beneath.remove(cell_dir)
        batches[cell.cell_id] = load_batches(cell_dir)
    return done, batches, cleared


def run_cells(cells: tuple[Cell, ...], policy: sampling.Sampling, cells_dir: Path, session: int,
              run_batch: RunBatch, cpus_of: Callable[[Cell], tuple[int, ...]], advertised: dict,
              progress, on_batch: Callable[[dict], None] = lambda meta: None,
              cleared_to: list | None = None, probe: Callable[[Cell], dict] | None = None) -> dict[str, dict]:
    """Run every batch the policy asks for that is not on disk yet; return each CELL's final record by id.

    ``on_batch`` hears of each finished batch; CELLs whose old not-ok record was cleared go to ``cleared_to``;
    ``probe(cell)`` measures the machine's own speed on the CELL's CPUs before and after each batch.
    """
    by_id = {c.cell_id: c for c in cells}
    run_dir = cells_dir.parent
    done, batches, cleared = prepare(cells, cells_dir)
    if cleared_to is not None:
        cleared_to.extend(cleared)
    for entry in cleared:
        progress(f"resume: {entry['cell_id']} ended {entry['status']} before; it runs again")
    todo = [c.cell_id for c in cells if c.cell_id not in done]
    position = 1 + last_position(cells_dir)
    total = sum(1 for cid in todo for r in range(1, policy.rounds + 1) if len(batches[cid]) < r)
    number = 0

    def failed(cid: str) -> bool:
        return any(not b.view.ok for b in batches[cid])

    def run_one(cid: str, round_number: int, size: int) -> None:
        nonlocal position, number, total
        cell, k = by_id[cid], len(batches[cid]) + 1
        folder = cells_dir / cid / "batches" / str(k)
        beneath.remove(folder)
        beneath.ensure_folder(run_dir, folder)  # a link on the way is refused, never written through
        cpus = tuple(cpus_of(cell))
        number += 1
        total = max(total, number)
        progress.cell_started(number, total, cell, ",".join(map(str, cpus)))
        started = time.monotonic()
        before = probe(cell) if probe else None
        with noise.Watch(cpus) as watch:
            record = run_batch(cell, size, folder)
        after = probe(cell) if probe else None
        meta = {"batch": k, "round": round_number, "position": position, "session": session,
                "noise": noise.assess(watch.before, watch.after, cpus, Record.read(record).outside.cpu_seconds),
                "frequency": noise.frequency(watch.mhz, watch.source, cpus, advertised)}
        if probe:
            meta["probes"] = {"before": before, "after": after}
        writing.write_json(folder / "batch.json", meta, run_dir)
        position += 1
        batches[cid].append(Batch(meta, record))
        # complete as soon as it is known: its rounds are run and no top-up is due (or a batch failed)
        complete = failed(cid) or (len(batches[cid]) >= policy.rounds and not _wants_more(batches[cid], policy))
        merged = batchmerge.combine([(b.meta, b.record) for b in batches[cid]], policy, complete=complete)
        write_record(cells_dir / cid / "record.json", merged, run_dir)
        on_batch({"cell_id": cid, "batch": k, "round": round_number, "position": meta["position"],
                  "status": record["status"]})
        progress.cell_finished(number, total, cell, merged, time.monotonic() - started)

    sizes = policy.round_sizes()
    for round_number in range(1, policy.rounds + 1):
        if policy.rounds > 1:
            progress(f"round {round_number} of {policy.rounds}: {len(todo)} CELL(s), order shuffled with seed "
                     f"{policy.seed}")
        for cid in policy.order(todo, round_number):
            if len(batches[cid]) < round_number and not failed(cid):
                run_one(cid, round_number, sizes[round_number - 1])
    extra = max(0, last_position(cells_dir, "round") - policy.rounds)  # a resumed RUN continues its numbering
    while True:
        needing = [cid for cid in todo if not failed(cid) and batches[cid] and _wants_more(batches[cid], policy)]
        if not needing:
            break
        extra += 1
        total += len(needing)
        progress(f"top-up {extra}: {len(needing)} CELL(s) above the CV target {policy.cv_target:g} get more repetitions")
        for cid in policy.order(needing, policy.rounds + extra):
            run_one(cid, policy.rounds + extra, policy.top_up_size(_count(batches[cid])))
    finals = {}
    for cell in cells:
        path = cells_dir / cell.cell_id / "record.json"
        if cell.cell_id in done or cell_done(path.parent):
            finals[cell.cell_id] = read_record(path, run_dir)
        elif batches[cell.cell_id] and not cell_done(path.parent):
            finals[cell.cell_id] = batchmerge.combine([(b.meta, b.record) for b in batches[cell.cell_id]], policy,
                                                    complete=True)
            write_record(path, finals[cell.cell_id], run_dir)
    return finals


def _count(found: list[Batch]) -> int:
    return sum(len(b.view.result.repetitions) for b in found if b.view.ok)


def _wants_more(found: list[Batch], policy: sampling.Sampling) -> bool:
    """Whether a CELL's batches so far leave its CV above target with room for another batch."""
    rates = [rate for b in found for rate in b.view.rates]
    return policy.wants_more(rates) and policy.top_up_size(_count(found)) > 0
