"""Expand a MATRIX into its PLAN: the ordered CELLs, each with a stable id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from orchestrator.engines import ENGINES
from orchestrator.matrix import Matrix, Workload


@dataclass(frozen=True)
class Cell:
    """One coordinate of the MATRIX: engine x model x format x threads x workload."""

    cell_id: str
    engine: str
    engine_options_json: str
    model: str
    format: str
    threads: int
    workload: Workload

    @property
    def engine_options(self) -> dict:
        return json.loads(self.engine_options_json)

    def coordinates(self) -> dict:
        """The plain-data coordinates that make up the cell id."""
        return {
            "engine": self.engine,
            "engine_options": self.engine_options,
            "model": self.model,
            "format": self.format,
            "threads": self.threads,
            "workload": asdict(self.workload),
        }

    def label(self) -> str:
        return f"{self.engine} {self.model}/{self.format} t{self.threads} {self.workload.name}"


def cell_id(coordinates: dict) -> str:
    """``c-`` + 12 hex digits of the sha256 of the canonical JSON of the coordinates."""
    canonical = json.dumps(coordinates, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "c-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def matches(rule: dict, values: dict) -> bool:
    """True when every key of an include/exclude rule matches the cell's value."""
    for key, wanted in rule.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if values[key] not in options and str(values[key]) not in map(str, options):
            return False
    return True


def expand(matrix: Matrix) -> tuple[Cell, ...]:
    """The PLAN: every CELL of the MATRIX, in MATRIX order, after include/exclude rules."""
    cells = []
    for engine in matrix.engines:
        readable = ENGINES[engine.name].formats
        for model in matrix.models:
            for fmt in model.formats:
                if fmt not in readable:
                    continue
                for threads in matrix.threads:
                    for workload in matrix.workloads:
                        values = {"engine": engine.name, "model": model.id, "format": fmt,
                                  "threads": threads, "workload": workload.name}
                        if matrix.include and not any(matches(r, values) for r in matrix.include):
                            continue
                        if any(matches(r, values) for r in matrix.exclude):
                            continue
                        cell = Cell("", engine.name, engine.options_json, model.id, fmt, threads, workload)
                        cells.append(replace(cell, cell_id=cell_id(cell.coordinates())))
    return tuple(cells)


def to_json(cell: Cell) -> dict:
    """A cell as plain data for `orchestrate plan --json` and run.json."""
    return {"cell_id": cell.cell_id, **cell.coordinates()}
