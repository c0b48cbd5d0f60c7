"""The summary of a RUN or of a merge, from their TABLEs: which baseline (--baseline, the MATRIX's, or the default)
and the TABLEs turned into the plain rows and columns merge/standings.py reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError, UsageError
from orchestrator.files import yamlsafe
from orchestrator.merge import baseline as yardstick
from orchestrator.merge import standings

if TYPE_CHECKING:
    import pandas as pd


def matrix_baseline(matrix_text: str | None) -> str | None:
    """The ``baseline:`` of a RUN's MATRIX text (run.json keeps it), None when it names none or cannot be read."""
    if not matrix_text:
        return None
    try:
        data = yamlsafe.load(matrix_text, "the RUN's MATRIX").data
    except InputError:
        return None
    found = data.get("baseline") if isinstance(data, dict) else None
    return found if isinstance(found, str) and found else None


def rows_of(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The TABLE's rows as dicts of plain Python values."""
    if table.empty:
        return []
    columns = list(table.columns)
    return [dict(zip(columns, values)) for values in zip(*(table[c].tolist() for c in columns))]


def choose(rows: Sequence[dict[str, Any]], given: str | None, matrix_texts: Sequence[str | None] = ()
           ) -> yardstick.Choice:
    """The baseline: ``given`` (checked: its engine must have a CELL in the TABLE), else the first MATRIX's that
    names one, else the default."""
    engines = list(dict.fromkeys(str(r.get("engine")) for r in rows))
    if given:
        engine, fmt = yardstick.parse(given)
        if rows and engine not in engines:
            raise UsageError(f"--baseline {given}: no CELL of engine {engine!r} in this TABLE "
                             f"(engines: {', '.join(engines)})")
        if rows and fmt and not any(r.get("engine") == engine and r.get("format") == fmt for r in rows):
            raise UsageError(f"--baseline {given}: engine {engine!r} has no CELL of format {fmt!r} in this TABLE")
    named = next((b for b in map(matrix_baseline, matrix_texts) if b), None)
    return yardstick.choose(engines, given, named)


def summarise(table: pd.DataFrame, repetitions: pd.DataFrame, given: str | None = None,
              matrix_texts: Sequence[str | None] = ()) -> standings.Summary:
    """The summary of a TABLE and its repetitions (a RUN's, or a merge's with its ``machine`` column)."""
    rows = rows_of(table)
    columns = {c: repetitions[c].tolist() for c in ("cell_id", "round", "machine", *standings.METRICS)
               if c in repetitions.columns}
    return standings.summarise(rows, columns, choose(rows, given, matrix_texts))
