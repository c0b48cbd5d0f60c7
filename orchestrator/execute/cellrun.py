"""Run one CELL in its own pinned, locked-down container and record how it ended."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from orchestrator.engines import ENGINES
from orchestrator.engines import options as engine_options
from orchestrator.errors import DockerError
from orchestrator.execute import record
from orchestrator.execute.record import CellSettings, Judged
from orchestrator.files import writing
from orchestrator.host import cgroup
from orchestrator.host.dockerapi import ContainerSpec, Exit, Mount
from orchestrator.results.judge import judge, quote_log
from orchestrator.results.recordfiles import write_record

RUNNER_USER = "65534:65534"  # every runner runs as nobody, with no capabilities


class ContainerRunner(Protocol):
    """What running a CELL needs from the Docker engine (dockerapi.Docker, or a fake in unit tests)."""

    def run(self, spec: ContainerSpec, timeout_s: float) -> Exit:
        """Run a container to its end (or its timeout) and say how it ended."""


def job_document(settings: CellSettings) -> dict:
    """The job file a runner reads (schemas/cell.schema.json); its engine options are checked first."""
    cell, model = settings.cell, settings.model
    engine_options.check(cell.engine, ENGINES[cell.engine].options, cell.engine_options)
    return {
        "schema_version": 1,
        "run_id": settings.run_id,
        "cell_id": cell.cell_id,
        "engine": {"name": cell.engine, "options": cell.engine_options},
        "model": {"id": cell.model, "format": cell.format, "path": model.container_path, "sha256": model.sha256,
                  "tokenizer": model.container_tokenizer},
        "threads": cell.threads,
        "workload": _workload(settings),
        "warmup": settings.warmup,
        "repetitions": settings.repetitions,
        "output_dir": "/out",
    }


IDS_IN_JOB = "ids.json"  # a perplexity CELL's token ids, copied into its job folder (/job/ids.json)


def _workload(settings: CellSettings) -> dict:
    """The job's workload: a prompt to generate from, or (perplexity) the text's ids file and its windows."""
    workload = settings.cell.workload
    if not workload.is_perplexity:
        return {"name": workload.name, "prompt": workload.prompt, "prompt_tokens": workload.prompt_tokens,
                "gen_tokens": workload.gen_tokens}
    ids = settings.eval_ids
    if ids is None:
        raise DockerError(f"{settings.cell.label()}: no token ids of text {workload.text!r} were prepared")
    return {"name": workload.name, "kind": "perplexity", "text": workload.text, "ids_path": f"/job/{IDS_IN_JOB}",
            "ids_sha256": ids.sha256, "context": workload.context, "stride": workload.stride}


def container_spec(settings: CellSettings, cell_dir: Path, cgroup_parent: str) -> ContainerSpec:
    """The locked-down container of a CELL: pinned, limited, read-only but for /out."""
    cell, placement = settings.cell, settings.placement
    engine = ENGINES[cell.engine]
    return ContainerSpec(
        image=settings.image.tag, name=f"orchestrate-{settings.run_id}-{cell.cell_id}",
        labels={"orchestrate.run": settings.run_id, "orchestrate.cell": cell.cell_id},
        mounts=(Mount(str(cell_dir / "job"), "/job"), Mount(str(settings.model.folder), "/models"),
                Mount(str(cell_dir / "out"), "/out", read_only=False)),
        environment={"ORCHESTRATE_JOB": "/job/job.json"},
        cpuset_cpus=placement.cpuset_cpus, cpuset_mems=placement.cpuset_mems, mem_limit=settings.memory_bytes,
        user=RUNNER_USER, cgroup_parent=cgroup_parent, pids_limit=record.PIDS_LIMIT,
        entrypoint=engine.entrypoint[0] if engine.entrypoint else None, command=engine.entrypoint[1:] or None,
        tmpfs_size=engine.tmpfs_size)


def run_cell(docker: ContainerRunner, docker_info: dict, settings: CellSettings, cell_dir: Path,
             job_file: bytes | None = None) -> dict:
    """Run a CELL to the end, write its record.json atomically, and return the record.

    ``job_file``: bytes the container reads as its job instead of the CELL's job (the
    conformance suite's edge cases); the CELL is still judged against its own job.
    """
    job = job_document(settings)
    job_dir, out_dir = cell_dir / "job", cell_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    writing.write_json(job_dir / "job.json", job)
    if settings.eval_ids is not None:
        shutil.copyfile(settings.eval_ids.path, job_dir / IDS_IN_JOB)
        os.chmod(job_dir / IDS_IN_JOB, 0o644)
    if job_file is not None:
        (job_dir / "job.json").write_bytes(job_file)
        os.chmod(job_dir / "job.json", 0o644)
    os.chmod(job_dir, 0o755)
    os.chmod(out_dir, 0o777)  # the runner writes as an unprivileged user
    driver = docker_info.get("cgroup_driver", "cgroupfs")
    version = int(docker_info.get("cgroup_version", "1"))
    parent = cgroup.parent_name(driver, settings.run_id, settings.cell.cell_id)
    try:
        try:
            ended = docker.run(container_spec(settings, cell_dir, parent), settings.timeout_s)
        except DockerError as exc:  # recorded as a crashed CELL; the RUN goes on
            ended = Exit(None, False, False, None, None, f"orchestrate: the container did not run: {exc}")
        usage = cgroup.read_usage(driver, version, parent)
    finally:
        cgroup.remove(driver, version, parent)
    (cell_dir / "runner.log").write_text(ended.log, encoding="utf-8", errors="replace")
    ended = replace(ended, log=quote_log(ended.log))  # the full log stays in runner.log; records quote its tail
    judged = Judged(*judge(job, ended.exit_code, ended.oom_killed, ended.timed_out, ended.log,
                           out_dir / "result.json"))
    document = record.assemble(settings, ended, usage, judged, docker_info.get("architecture"))
    write_record(cell_dir / "record.json", document)
    return document
