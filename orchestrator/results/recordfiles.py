"""RECORDs and run.json on disk: written atomically after validation, read back bounded, strict and validated.

Every record and run.json is read beneath its RUN folder (no link followed out of it), and
checked against its schema and for times no clock can have measured; reader.py is the typed
view of what these functions return.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator import schemas
from orchestrator.errors import ResultError
from orchestrator.files import reading, writing
from orchestrator.results.judge import MAX_REASON_CHARS, divisor_problems

MAX_RECORD_BYTES = 64 * 2**20  # record.json and run.json when read back (a record holds one RESULT)


@dataclass(frozen=True)
class Broken:
    """A CELL record that could not be read back: which cell, where, and why."""

    cell_id: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def write_record(path: Path, record: dict, root: Path | None = None) -> None:
    """Validate a CELL record against schemas/record.schema.json and write it atomically (beneath ``root``)."""
    schemas.check("record", record, f"record for cell {record.get('cell_id')}")
    writing.write_json(path, record, root)


def read_run(run_dir: Path, broken: list[Broken] | None = None) -> tuple[dict, list[dict]]:
    """run.json and every CELL record of a RUN folder, each validated when read.

    A record that cannot be read back raises ResultError; with a ``broken`` list it is
    appended there instead and the other records are still returned.
    """
    run = read_run_file(run_dir)
    return run, read_records(run_dir, recorded_cells(run_dir, run), broken)


def recorded_cells(run_dir: Path, run: dict) -> list[str]:
    """The ids of the RUN's CELLs that have a record file, in plan order (a stopped RUN lacks some)."""
    cells = os.path.join(run_dir, "cells")
    return [cell_id for cell_id in run["plan_order"] if os.path.lexists(os.path.join(cells, cell_id, "record.json"))]


def read_records(run_dir: Path, cell_ids: list[str], broken: list[Broken] | None = None) -> list[dict]:
    """The records of ``cell_ids`` (see read_run for ``broken``)."""
    records = []
    cells = os.path.join(run_dir, "cells")
    for cell_id in cell_ids:
        path = os.path.join(cells, cell_id, "record.json")  # strings: pathlib costs more than the read
        try:
            records.append(read_record(path, run_dir))
        except ResultError as exc:
            if broken is None:
                raise
            broken.append(Broken(cell_id, path, reading.quote(str(exc).removeprefix(f"{path}: "),
                                                                    MAX_REASON_CHARS)))
    return records


def read_run_file(run_dir: Path) -> dict:
    """A RUN folder's run.json, read like a RESULT (bounded, strict, no links) and validated; ResultError if not."""
    run_file = Path(run_dir) / "run.json"
    if not os.path.lexists(run_file):
        raise ResultError(f"{run_dir} is not a RUN folder: it has no run.json")
    try:
        run = reading.parse_json(reading.read_regular(run_file, MAX_RECORD_BYTES, root=run_dir), str(run_file))
    except reading.Refused as exc:
        raise ResultError(f"{run_file} cannot be read: {exc.detail}") from None
    schemas.check("run", run, str(run_file))
    return run


def read_record(path: Path, root: Path | None = None) -> dict:
    """One CELL record, read like a RESULT (bounded, strict, no link beneath ``root``: by default its own
    folder) and validated; ResultError says why not.

    Its RESULT's plausibility is checked again (a record may come from elsewhere, and every rate divides by
    its times), its consistency with the job is not.
    """
    try:
        record = reading.parse_json(reading.read_regular(path, MAX_RECORD_BYTES, root=root, contained=True),
                                    str(path))
    except reading.Refused as exc:
        raise ResultError(f"{path}: {exc.detail}") from None
    schemas.check("record", record, str(path))
    if record["status"] == "ok" and record["result"] is None:
        raise ResultError(f"{path}: status ok but it holds no RESULT")
    if record["result"] is not None:  # a record from elsewhere: the times every rate divides by
        tiny = divisor_problems(record["result"])
        if tiny:
            raise ResultError(f"{path}: " + "; ".join(tiny[:3]))
    return record
