"""The typed reader of run.json: the RUN's identity, MATRIX, PLAN, host snapshot and history as attributes.

Like reader.py for records: run.json read from disk bounded and validated (recordfiles.py),
upgraded, then read through this view; nothing else reads run.json by chained string keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.results.documents import _View, upgrade


class Frequency(_View):
    """A frequency for per-GHz figures: GHz and where it came from, or a reason it is unknown."""

    @property
    def ghz(self) -> float | None:
        return self.doc.get("ghz")

    @property
    def source(self) -> str | None:
        return self.doc.get("source")

    @property
    def reason(self) -> str | None:
        return self.doc.get("reason")


class RunDocument(_View):
    """run.json, validated and upgraded."""

    @classmethod
    def read(cls, doc: Mapping[str, Any], where: str = "run.json") -> RunDocument:
        return cls(upgrade("run", doc, where))

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def status(self) -> str:
        return self.doc["status"]

    @property
    def started_at(self) -> str:
        return self.doc["started_at"]

    @property
    def finished_at(self) -> str | None:
        return self.doc.get("finished_at")

    @property
    def error(self) -> str | None:
        return self.doc.get("error")

    @property
    def version(self) -> str:
        return self.doc["orchestrator"]["version"]

    @property
    def git_commit(self) -> str | None:
        return self.doc["orchestrator"]["git_commit"]

    @property
    def git_dirty(self) -> bool | None:
        return self.doc["orchestrator"].get("git_dirty")

    @property
    def matrix_path(self) -> str:
        return self.doc["matrix"]["path"]

    @property
    def matrix_text(self) -> str:
        return self.doc["matrix"]["text"]

    @property
    def expanded_cell_ids(self) -> list[str]:
        return [cell["cell_id"] for cell in self.doc["matrix"]["expanded"]]

    @property
    def plan_order(self) -> list[str]:
        return self.doc["plan_order"]

    @property
    def shard(self) -> tuple[int, int] | None:
        shard = self.doc.get("shard")
        return (shard["index"], shard["count"]) if shard else None

    @property
    def ci(self) -> Mapping[str, Any]:
        return self.doc.get("ci") or {}

    @property
    def images(self) -> Mapping[str, Mapping[str, Any]]:
        return self.doc["images"]

    @property
    def models(self) -> Mapping[str, Mapping[str, Any]]:
        return self.doc["models"]

    @property
    def host(self) -> Mapping[str, Any]:
        return self.doc["host"]

    @property
    def host_fingerprint(self) -> str:
        return self.doc["host"]["fingerprint"]

    @property
    def frequency(self) -> Mapping[str, Any]:
        """The host's advertised frequency (run.json's snapshot)."""
        return self.doc["host"]["frequency"]

    @property
    def cpu_brand(self) -> str | None:
        return (self.doc["host"].get("cpu") or {}).get("brand")

    @property
    def sampling(self) -> Mapping[str, Any]:
        return self.doc.get("sampling") or {}

    @property
    def seed(self) -> int | None:
        return self.sampling.get("seed")

    @property
    def seed_source(self) -> str:
        return self.sampling.get("seed_source", "run.json")

    @property
    def counts(self) -> Mapping[str, int]:
        return self.doc.get("counts") or {}

    @property
    def sessions(self) -> list[Mapping[str, Any]]:
        return self.doc.get("sessions") or []
