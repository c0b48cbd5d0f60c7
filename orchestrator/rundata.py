"""Typed RUN data: run.json and CELL records read into frozen dataclasses, upgraded on load.

pyperf reads its JSON through ``Run``/``Benchmark`` classes that know the file's version;
this module does the same for a RUN folder. Documents are read (bounded, validated)
through ``results.read_run``, upgraded step by step to ``SCHEMA_VERSION`` (``UPGRADES``),
then turned into ``Run``, ``RunInfo``, ``CellRun`` and ``Repetition``. Code that compares
or reproduces RUNs reads these attributes, not deep string keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from orchestrator import stats
from orchestrator.errors import ResultError

SCHEMA_VERSION = 1  # of run.json and record.json, as schemas/run.schema.json and record.schema.json say


def _upgrade_run_v1(doc: dict) -> dict:
    """Fields added to run.json after its first version (absent means: not recorded then)."""
    return {"shard": None, "ci": None, "smoke": [], "counts": {}, "error": None, **doc}


def _upgrade_record_v1(doc: dict) -> dict:
    """Records written before the threads verdict existed: take the runner's figure."""
    if "threads" in doc:
        return doc
    used = ((doc.get("result") or {}).get("threads") or {}).get("engine_reported")
    return {**doc, "threads": {"requested": doc["cell"]["threads"], "used": used,
                               "basis": "runner" if used is not None else "none", "rule": "upgraded on load"}}


# (kind, version) -> the step that fills in what later writers add; a version-N document
# goes through every step from N to SCHEMA_VERSION. Version 1 documents are normalised in place.
UPGRADES: dict[tuple[str, int], Callable[[dict], dict]] = {
    ("run", 1): _upgrade_run_v1,
    ("record", 1): _upgrade_record_v1,
}


def upgrade(kind: str, doc: dict, where: str = "") -> dict:
    """``doc`` brought to SCHEMA_VERSION; ResultError for a version this orchestrator cannot read."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ResultError(f"{where or kind}: schema_version {version!r} is not a version this orchestrator knows")
    if version > SCHEMA_VERSION:
        raise ResultError(f"{where or kind}: schema_version {version} was written by a newer orchestrator "
                          f"(this one reads up to {SCHEMA_VERSION}); upgrade this checkout")
    for step in range(version, SCHEMA_VERSION + 1):
        doc = UPGRADES.get((kind, step), lambda d: d)(doc)
    return {**doc, "schema_version": SCHEMA_VERSION}


@dataclass(frozen=True)
class Repetition:
    """One timed repetition, with the derived metrics the TABLE shows."""

    index: int
    prompt_tokens: int
    generated_tokens: int
    prefill_s: float
    decode_s: float
    ttft_s: float
    inter_token_latencies_s: tuple[float, ...]
    # A perplexity evaluation (docs/contract.md): its time and scored ids; the generation fields are 0 then.
    time_s: float = math.nan
    scored_tokens: int = 0

    @property
    def ppl_tps(self) -> float:
        """Scored ids per second of a perplexity evaluation; NaN for a generation repetition."""
        return self.scored_tokens / self.time_s if self.time_s > 0 else math.nan

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else math.nan

    @property
    def gen_tps(self) -> float:
        """(generated - 1) / decode time, as merge.generation_rate."""
        return (self.generated_tokens - 1) / self.decode_s if self.decode_s > 0 else math.nan

    @property
    def ttft_ms(self) -> float:
        return self.ttft_s * 1000 if self.scored_tokens == 0 else math.nan

    @property
    def itl_p50_ms(self) -> float:
        return stats.percentile(sorted(s * 1000 for s in self.inter_token_latencies_s), 50)

    @classmethod
    def from_json(cls, rep: Mapping[str, Any]) -> Repetition:
        if "mean_nll" in rep:  # a perplexity evaluation
            return cls(rep["index"], 0, 0, 0.0, 0.0, 0.0, (), rep["time_s"], rep["scored_tokens"])
        return cls(rep["index"], rep["prompt_tokens"], rep["generated_tokens"], rep["prefill_s"], rep["decode_s"],
                   rep["ttft_s"], tuple(rep["inter_token_latencies_s"]))


@dataclass(frozen=True)
class CellRun:
    """One CELL of a RUN: coordinates, status, placement, provenance and repetitions."""

    cell_id: str
    engine: str
    engine_options: Mapping[str, Any]
    model: str
    format: str
    threads: int
    workload: str
    status: str
    reason: str | None
    cpus: str
    host_core_reserved: bool
    threads_used: int | None
    image_tag: str
    image_id: str
    engine_version: str | None
    engine_build: Mapping[str, Any]
    model_sha256: str
    repetitions: tuple[Repetition, ...]
    timed_cpu_s: float | None = None  # CPU seconds of the engine's threads during the timed repetitions

    @property
    def cpu_share(self) -> float | None:
        """CPU time of the engine's threads / (timed prefill + decode time x threads), during the repetitions:
        near 1 when the CELL had its CPUs to itself, lower when other work ran on them."""
        timed = math.fsum(r.ttft_s + r.decode_s if r.scored_tokens == 0 else r.time_s for r in self.repetitions)
        if not timed or self.timed_cpu_s is None:
            return None
        return self.timed_cpu_s / (timed * self.threads)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.model}/{self.format} t{self.threads} {self.workload}"

    def samples(self, metric: str) -> tuple[float, ...]:
        """The metric's value in every repetition (NaNs left out)."""
        values = (getattr(rep, metric) for rep in self.repetitions)
        return tuple(v for v in values if not math.isnan(v))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CellRun:
        doc = upgrade("record", dict(doc), f"record of {doc.get('cell_id')}")
        cell, prov, result = doc["cell"], doc["provenance"], doc.get("result") or {}
        reps = tuple(Repetition.from_json(r) for r in result.get("repetitions", ())) if doc["status"] == "ok" else ()
        return cls(doc["cell_id"], cell["engine"], dict(cell["engine_options"]), cell["model"], cell["format"],
                   cell["threads"], cell["workload"]["name"], doc["status"], doc["reason"], doc["placement"]["cpus"],
                   doc["placement"]["host_core_reserved"], (doc.get("threads") or {}).get("used"),
                   prov["image"]["tag"], prov["image"]["id"], prov["engine_version"],
                   dict((result.get("engine") or {}).get("build") or {}), prov["model"]["sha256"], reps,
                   _timed_cpu(result) if reps else None)


def _timed_cpu(result: Mapping[str, Any]) -> float | None:
    per_thread = (result.get("threads") or {}).get("per_thread")
    return math.fsum(t["cpu_s"] for t in per_thread) if per_thread else None


@dataclass(frozen=True)
class Host:
    """The host facts a comparison needs, from run.json's snapshot (None where not recorded)."""

    cpu_brand: str | None
    cpu_vendor: str | None
    cpu_family: int | None
    cpu_model: int | None
    machine: str | None
    logical_cpus: int | None
    frequency_ghz: float | None
    frequency_source: str | None
    smt_active: str | None
    governor: str | None
    boost: str | None
    kernel: str | None
    docker_version: str | None
    cgroup_version: str | None
    cgroup_driver: str | None
    storage_driver: str | None
    memory_total_bytes: int | None
    fingerprint: str

    @classmethod
    def from_json(cls, host: Mapping[str, Any]) -> Host:
        cpu, freq, docker = host.get("cpu") or {}, host.get("frequency") or {}, host.get("docker") or {}
        return cls(cpu.get("brand"), cpu.get("vendor"), cpu.get("family"), cpu.get("model"), host.get("machine"),
                   cpu.get("logical_cpus"), freq.get("ghz"), freq.get("source") or freq.get("reason"),
                   host.get("smt_active"), host.get("governor"), host.get("boost"), host.get("kernel"),
                   docker.get("version"), str(host.get("cgroup_version")) if host.get("cgroup_version") else None,
                   docker.get("cgroup_driver"), docker.get("storage_driver"), host.get("memory_total_bytes"),
                   host["fingerprint"])


@dataclass(frozen=True)
class ImageInfo:
    """An ENGINE's IMAGE as the RUN used it."""

    tag: str
    id: str
    base: str | None
    base_id: str | None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def content(self) -> str:
        """The content hash part of the tag."""
        return self.tag.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class RunInfo:
    """run.json, typed."""

    run_id: str
    status: str
    started_at: str
    git_commit: str | None
    git_dirty: bool | None
    orchestrator_version: str
    matrix_path: str
    matrix_text: str
    plan_order: tuple[str, ...]
    shard: tuple[int, int] | None  # (index, count)
    images: Mapping[str, ImageInfo]  # by engine
    models: Mapping[str, str]  # "<model>/<format>" -> sha256
    host: Host

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunInfo:
        doc = upgrade("run", dict(doc), "run.json")
        shard = doc.get("shard")
        images = {engine: ImageInfo(i["tag"], i["id"], i.get("base"), i.get("base_id"), dict(i.get("labels") or {}))
                  for engine, i in doc["images"].items()}
        return cls(doc["run_id"], doc["status"], doc["started_at"], doc["orchestrator"]["git_commit"],
                   doc["orchestrator"].get("git_dirty"), doc["orchestrator"]["version"], doc["matrix"]["path"],
                   doc["matrix"]["text"], tuple(doc["plan_order"]),
                   (shard["index"], shard["count"]) if shard else None, images,
                   {key: m["sha256"] for key, m in doc["models"].items()}, Host.from_json(doc["host"]))


@dataclass(frozen=True)
class Run:
    """A RUN read back: its run.json and its CELLs by id (in PLAN order)."""

    info: RunInfo
    cells: Mapping[str, CellRun]
    source: str  # the folder or bundle it was read from

    @classmethod
    def from_documents(cls, run: Mapping[str, Any], records: list[Mapping[str, Any]], source: str = "") -> Run:
        """Pure: typed RUN from run.json and record documents (as results.read_run returns them)."""
        return cls(RunInfo.from_json(run), {r["cell_id"]: CellRun.from_json(r) for r in records}, source)


def load(run_dir: Path) -> Run:
    """Read a RUN folder (validated by results.read_run) into a typed Run."""
    from orchestrator.results import read_run

    run, records = read_run(Path(run_dir))
    return Run.from_documents(run, records, str(run_dir))
