"""The one typed reader of a CELL record (record.json) and of run.json: attributes, not deep string keys.

A record or run.json is read from disk (bounded, validated: recordfiles.py), upgraded to
``SCHEMA_VERSION`` (``upgrade``), then read through these views. Each view wraps the
validated document and exposes its fields as typed attributes; figures derived from a
record (the generation rate, the threads used, the decode rates sampling looks at) are
defined here once. Nothing outside this module reads a record or run.json by chained
string keys (tests/unit/test_architecture.py counts them). Views copy nothing: a report of
10,000 records reads each field where it lies.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from orchestrator.results.documents import _View, upgrade
from orchestrator.results.recordparts import Coordinates, Outside, Result, Sampling


class Record(_View):
    """A CELL record (record.json), validated and upgraded."""

    @classmethod
    def read(cls, doc: Mapping[str, Any], where: str = "") -> Record:
        """A view of a record document, upgraded to SCHEMA_VERSION."""
        return cls(upgrade("record", doc, where or f"record of {doc.get('cell_id')}"))

    @property
    def cell_id(self) -> str:
        return self.doc["cell_id"]

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def status(self) -> str:
        return self.doc["status"]

    @property
    def ok(self) -> bool:
        return self.doc["status"] == "ok"

    @property
    def reason(self) -> str | None:
        return self.doc["reason"]

    @property
    def test_double(self) -> bool:
        return self.doc["test_double"]

    @cached_property
    def cell(self) -> Coordinates:
        return Coordinates(self.doc["cell"])

    @property
    def cpus(self) -> str:
        return self.doc["placement"]["cpus"]

    @property
    def host_core_reserved(self) -> bool:
        return self.doc["placement"]["host_core_reserved"]

    @property
    def placement_note(self) -> str | None:
        return self.doc["placement"].get("note")

    @property
    def memory_bytes(self) -> int:
        return self.doc["limits"]["memory_bytes"]

    @property
    def timeout_s(self) -> float:
        return self.doc["limits"]["timeout_s"]

    @cached_property
    def outside(self) -> Outside:
        return Outside(self.doc["outside"])

    @property
    def image_tag(self) -> str:
        return self.doc["provenance"]["image"]["tag"]

    @property
    def image_id(self) -> str | None:
        return self.doc["provenance"]["image"]["id"]

    @property
    def engine_version(self) -> str | None:
        return self.doc["provenance"]["engine_version"]

    @property
    def model_sha256(self) -> str:
        return self.doc["provenance"]["model"]["sha256"]

    @property
    def log_tail(self) -> str:
        return self.doc.get("log_tail", "")

    @cached_property
    def result(self) -> Result | None:
        result = self.doc.get("result")
        return Result(result) if result is not None else None

    @property
    def ok_result(self) -> Result | None:
        """The RESULT of an ok CELL (None otherwise)."""
        return self.result if self.ok else None

    @property
    def is_perplexity(self) -> bool:
        return self.result is not None and self.result.is_perplexity

    @cached_property
    def sampling(self) -> Sampling:
        return Sampling(self.doc.get("sampling") or {})

    @property
    def emulated(self) -> bool:
        """Whether the CELL ran a foreign-architecture IMAGE under emulation (its speed is no architecture's)."""
        return (self.doc.get("emulation") or {}).get("emulated") is True

    @property
    def image_architecture(self) -> str | None:
        """The architecture the CELL's IMAGE was built for (Docker's name), when recorded."""
        return (self.doc.get("emulation") or {}).get("image_architecture")

    @property
    def threads_used(self) -> int | None:
        """The threads the CELL ran with: the orchestrator's verdict when the record has one, else the runner's."""
        verdict = self.doc.get("threads")
        if isinstance(verdict, dict) and "used" in verdict:
            return verdict["used"]
        return self.result.engine_reported_threads if self.result else None

    @property
    def rates(self) -> list[float]:
        """Decode rate of each timed repetition of an ok record (perplexity: scored ids per second): what adaptive
        repetitions and the progress line look at."""
        result = self.ok_result
        if result is None:
            return []
        if result.is_perplexity:
            return [rep.scoring_rate for rep in result.repetitions if rep.time_s > 0]
        return [rep.generation_rate for rep in result.repetitions if rep.decode_s > 0]

    @property
    def first_token_ids(self) -> list[int] | None:
        """The greedy token ids of the first repetition (what agreement compares), None for a CELL not ok."""
        result = self.ok_result
        return result.repetitions[0].token_ids if result is not None and result.repetitions else None


def as_records(items) -> list[Record]:
    """Records as views: a Record as it is, a record document (already validated) read into one."""
    return [item if isinstance(item, Record) else Record.read(item) for item in items]
