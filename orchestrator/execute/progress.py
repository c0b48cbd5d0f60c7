"""What a person sees while a RUN goes: plain lines (pipes, logs) or a live view in a terminal.

``execute_run`` reports events (the RUN starts, a stage such as an IMAGE build or a model
begins and ends, a CELL starts and finishes) to an ``Events`` object. The base class
writes one plain line per event; ``LiveView`` draws them with rich: overall progress,
the current CELL or stage, elapsed time and an estimate of what is left, and a line for
each finished CELL with its status and headline figure. Free-form lines from IMAGE
builds and model tools become the current stage's detail in the live view.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from rich.markup import escape

from orchestrator.files import terminal
from orchestrator.results.reader import Record, as_records
from orchestrator.results.runreader import RunDocument
from orchestrator.stats import describe


def headline(document: Mapping) -> str:
    """A finished CELL in a few words: its median generation speed, or why it did not end ok."""
    record = Record.read(document)
    if not record.ok:
        return str(record.reason or "")
    figures = record.result.perplexity
    if figures is not None:
        return f"perplexity {figures.perplexity:.4g} over {figures.scored_tokens} ids"
    rates = sorted(record.rates)
    return f"median generation {describe.median(rates):.1f} tok/s" if rates else ""


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss or m:ss."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Events:
    """A RUN's progress; this base class writes plain lines through ``say``."""

    def __init__(self, say: Callable[[str], None]):
        self._say = say
        self._started = time.monotonic()
        self._cell_seconds: list[float] = []
        self._stage: tuple[str, float] | None = None

    def __call__(self, text: str) -> None:
        """A free-form line (IMAGE builds, model tools, warnings)."""
        self._say(text)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def remaining(self, done: int, total: int) -> float | None:
        """Seconds left, from the mean time of the CELLs finished so far; None before the first."""
        if not self._cell_seconds:
            return None
        return sum(self._cell_seconds) / len(self._cell_seconds) * (total - done)

    def run_started(self, run_id: str, total: int, run_dir) -> None:
        self._say(f"RUN {run_id}: {total} cells -> {run_dir}")

    def stage(self, name: str) -> None:
        """A stage before the CELLs (an IMAGE build, a model, the smoke test, the report) begins."""
        self._stage = (name, time.monotonic())
        self._say(f"{name} ...")

    def stage_done(self, detail: str = "") -> None:
        if self._stage:
            name, started = self._stage
            self._say(f"{name}: done in {time.monotonic() - started:.1f}s" + (f" ({detail})" if detail else ""))
        self._stage = None

    def cell_started(self, number: int, total: int, cell, cpus: str) -> None:
        self._say(f"[{number}/{total}] {cell.cell_id} {cell.label()} on CPUs {cpus} ...")

    def cell_finished(self, number: int, total: int, cell, record: dict, seconds: float) -> None:
        self._cell_seconds.append(seconds)
        left = self.remaining(number, total)
        text = headline(record)
        self._say(f"    {record['status']} in {seconds:.1f}s" + (f": {text}" if text else "")
                  + f" (elapsed {clock(self.elapsed())}" + (f", about {clock(left)} left)" if left else ")"))

    def close(self) -> None:
        """Stop drawing (the live view); plain lines need nothing."""


def events_for(progress) -> Events:
    """``progress`` as Events: an Events object as it is, any callable as plain lines."""
    return progress if isinstance(progress, Events) else Events(progress)


class LiveView(Events):
    """The live view in a terminal (rich): progress bar, current CELL or stage, finished CELLs."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console or Console(stderr=True)
        super().__init__(lambda text: self.console.print(terminal.escape(text), markup=False, highlight=False))
        self._bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
                             TextColumn("{task.fields[left]}"), TextColumn("{task.fields[detail]}", markup=False),
                             console=self.console, transient=False, refresh_per_second=4)
        self._cells = None
        self._run_cells = 0
        self._current = None
        self._bar.start()

    def __call__(self, text: str) -> None:
        task = self._current if self._current is not None else self._cells
        if task is not None and self._stage:
            self._bar.update(task, detail=terminal.escape(text.strip()[-100:]))  # build and tool chatter
        else:
            self.console.print(terminal.escape(text), markup=False, highlight=False)

    def run_started(self, run_id: str, total: int, run_dir) -> None:
        self.console.print(f"[bold]RUN {_markup(run_id)}[/bold]: {total} cells -> {_markup(str(run_dir))}",
                           highlight=False)
        self._run_cells = total
        self._cells = self._bar.add_task("CELLs", total=total, left="", detail="waiting for IMAGEs and models")

    def stage(self, name: str) -> None:
        self._stage = (name, time.monotonic())
        self._current = self._bar.add_task(name, total=None, left="", detail="")

    def stage_done(self, detail: str = "") -> None:
        if self._stage and self._current is not None:
            name, started = self._stage
            self._bar.remove_task(self._current)
            self.console.print("[green]done[/green] " + _markup(f"{name} in {time.monotonic() - started:.1f}s"
                                                                  + (f" ({detail})" if detail else "")),
                               highlight=False)
        self._stage, self._current = None, None

    def _counted(self, total: int) -> dict:
        """The bar counts what the runner counts: CELLs, or their batches when the RUN has rounds."""
        return {"total": total, "description": "CELLs" if total == self._run_cells else "batches"}

    def cell_started(self, number: int, total: int, cell, cpus: str) -> None:
        if self._cells is not None:
            self._bar.update(self._cells, detail=terminal.escape(f"now {cell.label()} on CPUs {cpus}"),
                             **self._counted(total))

    def cell_finished(self, number: int, total: int, cell, record: dict, seconds: float) -> None:
        self._cell_seconds.append(seconds)
        ok = record["status"] == "ok"
        mark = "[green]ok[/green]" if ok else f"[red]{_markup(record['status'])}[/red]"
        text = f"[{number}/{total}] {cell.label()} in {seconds:.1f}s: {headline(record)}"
        self.console.print(f"{mark} {_markup(text)}", highlight=False)
        if self._cells is not None:
            left = self.remaining(number, total)  # mean time of the CELLs so far x CELLs to go
            self._bar.update(self._cells, completed=number, left=f"about {clock(left)} left" if left else "",
                             **self._counted(total))

    def close(self) -> None:
        self._bar.stop()


def _markup(text: str) -> str:
    """Text for rich markup: its control characters shown as escapes, its brackets not read as markup."""
    return escape(terminal.escape(text))


def summary(document: Mapping, run_dir, records: list[Mapping]) -> dict:
    """The machine-readable end of `orchestrate run --json`: where things are and how each CELL ended."""
    run = RunDocument(document)
    counts: dict[str, int] = {}
    cells = []
    for record in as_records(records):
        counts[record.status] = counts.get(record.status, 0) + 1
        rates = sorted(rate for rate in record.rates if not record.is_perplexity)
        cell = record.cell
        cells.append({"cell_id": record.cell_id, "engine": cell.engine, "model": cell.model,
                      "format": cell.format, "threads": cell.threads, "workload": cell.workload.name,
                      "status": record.status, "reason": record.reason,
                      "gen_tps_median": describe.median(rates) if rates else None})
    tables = {p.name: str(p) for p in sorted((run_dir / "tables").glob("*"))} if (run_dir / "tables").is_dir() else {}
    return {"run_id": run.run_id, "status": run.status, "run_dir": str(run_dir),
            "started_at": run.started_at, "finished_at": run.finished_at,
            "report_html": str(run_dir / "report.html"), "tables": tables, "counts": counts, "cells": cells}
