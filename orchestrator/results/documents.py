"""What the readers of records and run.json share: schema versions and their upgrades, and the view base class.

A document of an older schema version is upgraded step by step to ``SCHEMA_VERSION`` before it
is read (``UPGRADES``); a newer one is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import ResultError

SCHEMA_VERSION = 1  # of run.json and record.json, as schemas/run.schema.json and record.schema.json say
NAN = float("nan")


def _upgrade_run_v1(doc: dict) -> dict:
    """Fields added to run.json after its first version (absent means: not recorded then)."""
    return {"shard": None, "ci": None, "smoke": [], "counts": {}, "error": None, **doc}


def _upgrade_record_v1(doc: dict) -> dict:
    """Records written before the threads verdict existed: take the runner's figure."""
    if "threads" in doc:
        return doc
    result = doc.get("result") or {}
    used = (result.get("threads") or {}).get("engine_reported")
    cell = doc.get("cell") or {}
    return {**doc, "threads": {"requested": cell.get("threads"), "used": used,
                               "basis": "runner" if used is not None else "none", "rule": "upgraded on load"}}


# (kind, version) -> the step that fills in what later writers add; a version-N document
# goes through every step from N to SCHEMA_VERSION. Version 1 documents are normalised in place.
UPGRADES: dict[tuple[str, int], Callable[[dict], dict]] = {
    ("run", 1): _upgrade_run_v1,
    ("record", 1): _upgrade_record_v1,
}


def upgrade(kind: str, doc: Mapping, where: str = "") -> dict:
    """``doc`` brought to SCHEMA_VERSION; ResultError for a version this orchestrator cannot read."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ResultError(f"{where or kind}: schema_version {version!r} is not a version this orchestrator knows")
    if version > SCHEMA_VERSION:
        raise ResultError(f"{where or kind}: schema_version {version} was written by a newer orchestrator "
                          f"(this one reads up to {SCHEMA_VERSION}); upgrade this checkout")
    for step in range(version, SCHEMA_VERSION + 1):
        doc = UPGRADES.get((kind, step), lambda d: d)(dict(doc))
    return {**doc, "schema_version": SCHEMA_VERSION}


class _View:
    """A validated JSON object read through attributes."""

    __slots__ = ("doc",)

    def __init__(self, doc: Mapping[str, Any]):
        self.doc = doc

    def __reduce__(self):  # views travel between a report's worker processes
        return type(self), (self.doc,)
