"""A RUN as frozen values for comparing and reproducing: ``Run``, ``RunInfo``, ``CellRun``, ``Repetition``.

pyperf reads its JSON through ``Run``/``Benchmark`` classes that know the file's version;
compare and reproduce read a RUN the same way. The values are built from the one reader of
records and run.json (reader.py: bounded, validated, upgraded documents behind typed
views); they hold what a comparison needs and nothing reads the documents twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.host import probes
from orchestrator.results import reader, recordparts
from orchestrator.results.recordfiles import read_run
from orchestrator.results.runreader import RunDocument
from orchestrator.stats import describe


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
    round: int | None = None  # the ROUND of its BATCH, where the record says


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
        return describe.percentile(sorted(s * 1000 for s in self.inter_token_latencies_s), 50)

    @classmethod
    def from_view(cls, rep: recordparts.Repetition, in_round: int | None = None) -> Repetition:
        if rep.is_evaluation:  # a perplexity evaluation
            return cls(rep.index, 0, 0, 0.0, 0.0, 0.0, (), rep.time_s, rep.scored_tokens, in_round)
        return cls(rep.index, rep.prompt_tokens, rep.generated_tokens, rep.prefill_s, rep.decode_s, rep.ttft_s,
                   tuple(rep.inter_token_latencies_s), round=in_round)


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
    emulated: bool = False  # ran a foreign-architecture IMAGE under emulation
    # The machine's own speed beside the CELL's batches (host/probes.py): median GFLOP/s and GB/s, None if not run.
    probe_compute: float | None = None
    probe_memory: float | None = None

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
        """The metric's value in every repetition that measured it: every metric is a rate or a time, so NaN, zero
        (a time a runner did not measure) and infinity are left out."""
        values = (getattr(rep, metric) for rep in self.repetitions)
        return tuple(v for v in values if 0 < v < math.inf)

    def by_round(self, metric: str) -> dict[int, list[float]]:
        """The metric's samples grouped by the ROUND they were measured in (empty when no round is recorded)."""
        found: dict[int, list[float]] = {}
        for rep in self.repetitions:
            value = getattr(rep, metric)
            if rep.round is not None and 0 < value < math.inf:
                found.setdefault(rep.round, []).append(value)
        return found

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CellRun:
        record = reader.Record.read(doc)
        result = record.ok_result
        rounds = {b.number: b.round for b in record.sampling.batches}
        owner = record.sampling.repetition_batch  # repetition index -> its batch
        reps = tuple(Repetition.from_view(r, rounds.get(owner[r.index]) if 0 <= r.index < len(owner) else None)
                     for r in result.repetitions) if result is not None else ()
        cell = record.cell
        return cls(record.cell_id, cell.engine, dict(cell.engine_options), cell.model, cell.format, cell.threads,
                   cell.workload.name, record.status, record.reason, record.cpus, record.host_core_reserved,
                   record.threads_used, record.image_tag, record.image_id,
                   record.engine_version, dict(result.engine_build) if result is not None else {},
                   record.model_sha256, reps, result.timed_cpu_s if reps else None, record.emulated,
                   *_probe_figures(record))


def _probe_figures(record: reader.Record) -> tuple[float | None, float | None]:
    found = [batch.probes for batch in record.sampling.batches]
    return probes.figure(found, "compute_gflops"), probes.figure(found, "memory_gbs")


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
        run = RunDocument.read(doc)
        images = {engine: ImageInfo(i["tag"], i["id"], i.get("base"), i.get("base_id"), dict(i.get("labels") or {}))
                  for engine, i in run.images.items()}
        return cls(run.run_id, run.status, run.started_at, run.git_commit, run.git_dirty, run.version,
                   run.matrix_path, run.matrix_text, tuple(run.plan_order), run.shard, images,
                   {key: m["sha256"] for key, m in run.models.items()}, Host.from_json(run.host))


@dataclass(frozen=True)
class Run:
    """A RUN read back: its run.json and its CELLs by id (in PLAN order)."""

    info: RunInfo
    cells: Mapping[str, CellRun]
    source: str  # the folder or bundle it was read from

    @classmethod
    def from_documents(cls, run: Mapping[str, Any], records: list[Mapping[str, Any]], source: str = "") -> Run:
        """Pure: typed RUN from run.json and record documents (as results.read_run returns them)."""
        cells = (CellRun.from_json(r.doc if isinstance(r, reader.Record) else r) for r in records)
        return cls(RunInfo.from_json(run), {cell.cell_id: cell for cell in cells}, source)


def load(run_dir: Path) -> Run:
    """Read a RUN folder (validated by results.read_run) into a typed Run."""
    run, records = read_run(Path(run_dir))
    return Run.from_documents(run, records, str(run_dir))
