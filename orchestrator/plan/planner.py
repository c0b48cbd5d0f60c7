"""Expand a MATRIX into its PLAN: the ordered CELLs, each with a stable id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from orchestrator import schemas
from orchestrator.engines import ENGINES
from orchestrator.errors import InputError, Problem, UsageError
from orchestrator.matrix.matrixfile import Matrix, Workload, line_of
from orchestrator.models import catalogue


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
            "workload": self.workload.to_json(),
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
    """The PLAN: every CELL of the MATRIX, in MATRIX order, after include/exclude rules.

    InputError (with the MATRIX file's lines) when the rules leave no CELL, or when an ENGINE says it
    cannot run a model and format the PLAN gives it (Engine.supports).
    """
    cells = _cells(matrix)
    if not cells:
        rules = ("include",) if matrix.include else ("exclude",)
        raise InputError(matrix.source, [Problem(matrix.source, rules[0], line_of(matrix, rules),
                                                 "the include/exclude rules leave no cell to run",
                                                 "rules that keep at least one cell")])
    refused = unsupported(matrix, cells)
    if refused:
        raise InputError(matrix.source, refused)
    return cells


def unsupported(matrix: Matrix, cells: tuple[Cell, ...]) -> list[Problem]:
    """A Problem for each engine x model x format of the PLAN that its ENGINE says it cannot run (Engine.supports)."""
    known = catalogue.load()
    variants = [(e.name, e.options_json) for e in matrix.engines]
    problems, asked = [], set()
    for cell in cells:
        key = (cell.engine, cell.engine_options_json, cell.model, cell.format)
        if key in asked:
            continue
        asked.add(key)
        reason = ENGINES[cell.engine].supports(known[cell.model], cell.format, cell.engine_options)
        if reason:
            path = ("engines", variants.index(key[:2]))
            rule = f"{{engine: {cell.engine}, model: {cell.model}, format: {cell.format}}}"
            problems.append(Problem(matrix.source, schemas.json_path(path), line_of(matrix, path),
                                    f"engine {cell.engine} cannot run model {cell.model!r} as {cell.format}: {reason}",
                                    f"a model and format it runs, or an exclude rule {rule}"))
    return problems


def _cells(matrix: Matrix) -> tuple[Cell, ...]:
    cells = []
    # Each workload as plain data once, not once per CELL: plan of 10,000 CELLs < 1 s.
    for engine in matrix.engines:
        readable = ENGINES[engine.name].formats
        # An ENGINE runs only the workload kinds it declares, as it reads only its formats.
        workloads = [(w, w.to_json()) for w in matrix.workloads if w.kind in ENGINES[engine.name].workloads]
        options = json.loads(engine.options_json)
        for model in matrix.models:
            for fmt in model.formats:
                if fmt not in readable:
                    continue
                for threads in matrix.threads:
                    for workload, workload_data in workloads:
                        values = {"engine": engine.name, "model": model.id, "format": fmt,
                                  "threads": threads, "workload": workload.name}
                        if matrix.include and not any(matches(r, values) for r in matrix.include):
                            continue
                        if any(matches(r, values) for r in matrix.exclude):
                            continue
                        # The same dict as Cell.coordinates(), built without a Cell (tests/unit/test_plan.py).
                        coordinates = {"engine": engine.name, "engine_options": options, "model": model.id,
                                       "format": fmt, "threads": threads, "workload": workload_data}
                        cells.append(Cell(cell_id(coordinates), engine.name, engine.options_json, model.id, fmt,
                                          threads, workload))
    return tuple(cells)


def to_json(cell: Cell) -> dict:
    """A cell as plain data for `orchestrate plan --json` and run.json."""
    return {"cell_id": cell.cell_id, **cell.coordinates()}


@dataclass(frozen=True)
class Shard:
    """One of ``count`` parts of a PLAN, numbered from 1 (``--shard 2/3``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"i/N"`` -> Shard(i, N), with 1 <= i <= N."""
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise UsageError(f"--shard {text!r} must be I/N, for example 1/2")
    shard = Shard(int(index), int(count))
    if not 1 <= shard.index <= shard.count:
        raise UsageError(f"--shard {text!r}: I must be between 1 and N")
    return shard


def split(cells: tuple[Cell, ...], count: int) -> tuple[tuple[Cell, ...], ...]:
    """The PLAN in ``count`` stable, balanced shards: contiguous runs of PLAN order.

    PLAN order depends only on the MATRIX, so every machine computes the same split;
    every CELL lands in exactly one shard and shard sizes differ by at most one.
    Contiguous runs keep an engine's CELLs together, so a shard builds fewer IMAGEs.
    """
    if count < 1:
        raise UsageError(f"--shards must be at least 1, not {count}")
    if count > len(cells):
        raise UsageError(f"--shards {count}: the PLAN has only {len(cells)} cell(s), so some shards would be empty")
    bounds = [len(cells) * k // count for k in range(count + 1)]
    return tuple(cells[bounds[k]:bounds[k + 1]] for k in range(count))


def select(cells: tuple[Cell, ...], shard: Shard) -> tuple[Cell, ...]:
    """The CELLs of one shard of the PLAN."""
    return split(cells, shard.count)[shard.index - 1]


def shards_json(cells: tuple[Cell, ...], count: int) -> dict:
    """Every shard with its CELL ids, for `orchestrate plan --shards N --json`."""
    parts = split(cells, count)
    return {"cells": len(cells), "shard_count": count,
            "shards": [{"shard": str(Shard(k, count)), "cell_ids": [c.cell_id for c in part]}
                       for k, part in enumerate(parts, 1)]}


def github_matrix(cells: tuple[Cell, ...], count: int) -> dict:
    """A GitHub Actions ``strategy.matrix`` fragment: ``{"shard": ["1/N", ..., "N/N"]}``."""
    split(cells, count)  # refuses a count that leaves a shard empty
    return {"shard": [str(Shard(k, count)) for k in range(1, count + 1)]}


def shard_record(shard: Shard, plan_cells: tuple[Cell, ...], cells: tuple[Cell, ...]) -> dict:
    """What run.json says about the shard a RUN ran."""
    return {"index": shard.index, "count": shard.count, "cells": len(cells), "plan_cells": len(plan_cells)}
