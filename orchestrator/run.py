"""Execute a PLAN as one RUN: build IMAGEs, prepare models, run every CELL, merge, report."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import __version__
from orchestrator.engines import ENGINES
from orchestrator.errors import ImageBuildError, ResultError, UsageError
from orchestrator.execute import cellrun, ownership, resume, rounds, sampling, smoke
from orchestrator.execute.progress import events_for
from orchestrator.execute.record import CellSettings
from orchestrator.files import writing
from orchestrator.host import ci, cpuset, probes, sysinfo
from orchestrator.host.dockerapi import Docker
from orchestrator.images import imagebuild
from orchestrator.matrix.matrixfile import Matrix
from orchestrator.models import catalogue, modelstore, texts, tokenize
from orchestrator.plan import planner
from orchestrator.report import writer
from orchestrator.results.judge import CellStatus

ROOT = Path(__file__).resolve().parent.parent


def new_run_id(cells: tuple[planner.Cell, ...], now: datetime | None = None) -> str:
    """UTC time to the second plus 6 hex digits of the PLAN and the clock (unique per RUN)."""
    now = now or datetime.now(UTC)
    salt = ",".join(c.cell_id for c in cells) + str(time.time_ns())
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + hashlib.sha256(salt.encode()).hexdigest()[:6]


# place() lives in cpuset (pure, no Docker): `orchestrate validate` uses it without loading this module.
place = cpuset.place


def execute_run(matrix: Matrix, results_root: Path, progress: Callable[[str], None] = print,
                shard: planner.Shard | None = None, reproduces: dict | None = None, resume_run: dict | None = None) -> Path:
    """Run every CELL of the MATRIX; return the RUN folder. Failed cells are recorded, not raised.

    ``progress`` is a callable for plain lines or an ``orchestrator.execute.progress.Events`` (the live view).
    ``reproduces`` (from `orchestrate reproduce`) names the bundle this RUN repeats; run.json keeps it.
    ``resume_run`` (run.json of a RUN to finish, from resume.load) runs in that RUN's folder what is not done.
    """
    progress = events_for(progress)
    plan_cells = planner.expand(matrix)
    cells = planner.select(plan_cells, shard) if shard else plan_cells  # a shard: its part of the PLAN
    if not cells:
        raise UsageError(f"{matrix.source}: the include/exclude rules leave no cell to run")
    topology = sysinfo.topology()
    placements = place(cells, matrix, topology)
    docker = Docker()
    docker_info = docker.info()
    if resume_run is not None:  # what a killed session left (a container would block its CELL's name)
        resume.clear_leftovers(docker, docker_info, resume_run["run_id"], progress)
    run_id = resume_run["run_id"] if resume_run else new_run_id(cells)
    run_dir = Path(results_root).resolve() / run_id  # absolute: it is bind-mounted
    run_dir.mkdir(parents=True, exist_ok=resume_run is not None)  # a new RUN never overwrites an old one
    owner = ownership.RunOwner(run_dir)  # held until the RUN ends: a RUN still "running" without it was killed
    logs_dir = run_dir / "logs"
    progress.run_started(run_id, len(cells), run_dir)
    host = sysinfo.snapshot(docker_info)
    commit, dirty = sysinfo.git_commit()
    record = {
        "schema_version": 1, "run_id": run_id, "status": "running",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "finished_at": None,
        "orchestrator": {"version": __version__, "git_commit": commit, "git_dirty": dirty},
        "matrix": {"path": matrix.source, "text": matrix.raw, "expanded": [planner.to_json(c) for c in plan_cells]},
        "shard": planner.shard_record(shard, plan_cells, cells) if shard else None, "ci": ci.context(os.environ),
        "plan_order": [c.cell_id for c in cells], "images": {}, "models": {}, "host": host, "counts": {},
        "error": None,
    }
    if reproduces is not None:
        record["reproduces"] = reproduces
    if resume_run is not None:
        record = resume.carry_over(resume_run, record)
    seed, seed_source = resume.seed_of(matrix, resume_run)
    policy = sampling.Sampling.from_matrix(matrix, seed)
    record["sampling"] = {**policy.to_json(), "seed_source": seed_source}
    session = resume.new_session(record, resumed=resume_run is not None)
    writing.write_json(run_dir / "run.json", record)
    try:
        built, unbuilt = _build_images(docker, cells, logs_dir, progress, record, matrix.platform)
        prepared = _prepare_models(docker, cells, logs_dir, progress, record)
        eval_ids = _prepare_texts(docker, cells, prepared, logs_dir, progress, record)
        writing.write_json(run_dir / "run.json", record)
        smoked = _smoke(docker, docker_info, run_id, cells, built, unbuilt, prepared, matrix, topology, host,
                        run_dir, progress, record)
        writing.write_json(run_dir / "run.json", record)

        def run_batch(cell: planner.Cell, repetitions: int, folder: Path) -> dict:
            settings = CellSettings(
                run_id=run_id, cell=cell, image=built[cell.engine], model=prepared[(cell.model, cell.format)],
                placement=placements[cell.cell_id], warmup=matrix.warmup, repetitions=repetitions,
                memory_bytes=matrix.memory_limit_bytes(), timeout_s=matrix.timeout_s,
                host_fingerprint=host["fingerprint"], test_double=ENGINES[cell.engine].test_only,
                eval_ids=eval_ids.get((cell.model, cell.workload.text)))
            if cell.engine in unbuilt:
                return smoke.write_not_run(settings, folder, f"not run: the IMAGE cannot be built here: "
                                                             f"{unbuilt[cell.engine]}")
            outcome = smoked[(cell.engine, cell.format)]
            if outcome.ok:
                return cellrun.run_cell(docker, docker_info, settings, folder)
            return smoke.write_not_run(settings, folder, smoke.blocked_reason(outcome, built[cell.engine].tag))

        def batch_done(entry: dict) -> None:
            session["batches"].append(entry)
            owner.write_run(record)  # which batches ran in which session survives a kill -9

        def cpus_of(cell: planner.Cell) -> tuple[int, ...]:
            return placements[cell.cell_id].cpus

        def probe(cell: planner.Cell) -> dict:  # the machine's own speed on the CELL's CPUs (host/probes.py)
            return probes.measure(cpus_of(cell), prepared[(cell.model, cell.format)].size)

        finals = rounds.run_cells(cells, policy, run_dir / "cells", session["session"], run_batch, cpus_of,
                                  host["frequency"], progress, batch_done, session["rerun"], probe)
        counts = {status.value: 0 for status in CellStatus}
        for done in finals.values():
            counts[done["status"]] += 1
        record["counts"] = counts
        record["status"] = "finished"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        removed = docker.remove_labelled({"orchestrate.run": run_id})
        progress(f"interrupted: removed {len(removed)} container(s) of RUN {run_id}")
        raise
    except Exception as exc:
        record["status"] = "failed"
        record["error"] = _disk_full(exc, run_dir) if ownership.disk_full(exc) else str(exc)
        if ownership.disk_full(exc):
            raise ResultError(record["error"]) from None
        raise
    finally:
        record["finished_at"] = session["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            owner.write_run(record)  # uses the RUN's reserved space when the disk is full
            if any((run_dir / "cells").glob("*/record.json")):
                progress.stage("TABLEs and report.html")
                writer.write(run_dir)
                progress.stage_done()
        except OSError as exc:
            if not ownership.disk_full(exc):
                raise
            shutil.rmtree(run_dir / "tables", ignore_errors=True)  # perhaps half-written; `orchestrate report`
            (run_dir / "report.html").unlink(missing_ok=True)  # remakes them once there is room
            raise ResultError(_disk_full(exc, run_dir)) from None
        finally:
            owner.release()
    return run_dir


def prepare(matrices: list[Matrix], logs_dir: Path, progress: Callable[[str], None] = print,
            images_ready: Callable[[dict], None] = lambda images: None) -> dict:
    """Build the IMAGEs and make the models and evaluation texts that RUNs of these MATRIXes need; run no CELL.

    What `run` does before its first CELL, so that one machine (a CI build job) can do it once for many RUNs.
    Returns the ``images``, ``models`` and ``texts`` that run.json would record; an IMAGE that cannot be built
    is there with its ``error`` (as in a RUN), and the models and texts are still made. ``images_ready`` gets
    the images as soon as they are built, before any model is made (which may fail).
    """
    progress = events_for(progress)
    cells = tuple(c for m in matrices for c in planner.expand(m))  # each step below takes each IMAGE/model once
    if not cells:
        raise UsageError("the MATRIXes leave no cell: nothing to prepare")
    docker = Docker()
    record: dict = {"images": {}, "models": {}}
    for platform in dict.fromkeys(m.platform for m in matrices):
        _build_images(docker, tuple(c for m in matrices if m.platform == platform for c in planner.expand(m)),
                      logs_dir, progress, record, platform)
    images_ready(record["images"])
    prepared = _prepare_models(docker, cells, logs_dir, progress, record)
    _prepare_texts(docker, cells, prepared, logs_dir, progress, record)
    return record


BUILDS_AT_ONCE = 2  # a compile (llama.cpp, candle) overlaps a download of PyTorch (transformers, modelmaker)


def _build_images(docker: Docker, cells, logs_dir: Path, progress, record: dict,
                  platform: str | None = None) -> tuple[dict, dict[str, str]]:
    """Build (or find) each engine's IMAGE, two at a time (and the model maker beside them when the store lacks
    a model the CELLs read); an engine whose IMAGE cannot be built is named with the reason."""
    engines = list(dict.fromkeys(c.engine for c in cells))
    names = list(dict.fromkeys([ENGINES[e].image_dir for e in engines]
                               + (["modelmaker"] if platform is None and _models_missing(cells) else [])))
    progress.stage(f"IMAGEs {', '.join(names)}" + (f" for {platform}" if platform else "")
                   + (f" ({BUILDS_AT_ONCE} at a time)" if len(names) > 1 else ""))

    def one(name: str):
        try:  # each build thread talks to the engine through a client of its own
            return imagebuild.ensure(Docker() if len(names) > 1 else docker, name, logs_dir, progress,
                                     platform=platform)
        except ImageBuildError as exc:
            return exc

    with ThreadPoolExecutor(BUILDS_AT_ONCE) as pool:
        done = dict(zip(names, pool.map(one, names)))
    built, unbuilt, said = {}, {}, []
    for engine in engines:
        name = ENGINES[engine].image_dir
        image = done[name]
        if isinstance(image, ImageBuildError):  # this engine's CELLs end unavailable with the reason; the rest run
            built[engine], unbuilt[engine] = imagebuild.unavailable(name), str(image)
            said.append(f"{name} cannot be built here; its CELLs will be unavailable: {image}")
            record["images"][engine] = {"tag": built[engine].tag, "id": "", "error": str(image)}
            continue
        said.append(f"{image.tag}, {'built' if image.rebuilt else 'up to date'}")
        built[engine] = image
        record["images"][engine] = {"tag": image.tag, "id": image.id, "base": image.base, "base_id": image.base_id,
                                    "labels": image.labels, "build_log": image.log_path, "rebuilt": image.rebuilt,
                                    "architecture": image.architecture}
    progress.stage_done("; ".join(dict.fromkeys(said)))
    return built, unbuilt


def _models_missing(cells) -> bool:
    """Whether the store lacks a format some CELL reads (the model maker will be needed to make it)."""
    return any(modelstore.lookup(catalogue.get(c.model), c.format) is None for c in cells)


def _prepare_models(docker: Docker, cells, logs_dir: Path, progress, record: dict) -> dict:
    """Make (or verify) every model file the CELLs read: (model id, format) -> its prepared file."""
    prepared = {}
    wanted: dict[str, list[str]] = {}
    for cell in cells:
        wanted.setdefault(cell.model, []).append(cell.format)
        if cell.workload.is_perplexity:  # its text is tokenized by the model's Hugging Face tokenizer
            wanted[cell.model].append("safetensors")
    for model_id, formats in wanted.items():
        progress.stage(f"model {model_id} ({', '.join(dict.fromkeys(formats))})")
        made = modelstore.prepare(docker, model_id, list(dict.fromkeys(formats)), logs_dir, progress)
        progress.stage_done()
        for fmt, item in made.items():
            prepared[(model_id, fmt)] = item
            record["models"][f"{model_id}/{fmt}"] = {"sha256": item.sha256, "size": item.size,
                                                     "path": str(item.folder / item.relpath)}
    return prepared


def _prepare_texts(docker: Docker, cells, prepared: dict, logs_dir: Path, progress, record: dict) -> dict:
    """Every evaluation text the perplexity CELLs score, tokenized for their models: (model, text) -> EvalIds."""
    found = {}
    for cell in cells:
        key = (cell.model, cell.workload.text)
        if not cell.workload.is_perplexity or key in found:
            continue
        progress.stage(f"evaluation text {cell.workload.text} for {cell.model}")
        text = texts.get(cell.workload.text)
        found[key] = ids = tokenize.ids_for(docker, text, prepared[(cell.model, "safetensors")].folder,
                                         modelstore.store_root(), logs_dir, progress)
        progress.stage_done(f"{ids.count} ids")
        record.setdefault("texts", {})[f"{cell.model}/{text.id}"] = {
            "text_sha256": text.sha256, "packages": [p.file for p in text.packages_for(texts.host_arch())],
            "ids_sha256": ids.sha256, "ids": ids.count, "path": str(ids.path)}
    return found


def _smoke(docker, docker_info, run_id, cells, built, unbuilt, prepared, matrix, topology, host, run_dir: Path,
           progress, record: dict) -> dict:
    """One short CELL per engine x format that can run here (smoke.py); run.json lists the outcomes."""
    runnable = [c for c in cells if c.engine not in unbuilt]
    smoked = {}
    if runnable:
        first = runnable[0]
        base = CellSettings(
            run_id=run_id, cell=first, image=built[first.engine], model=prepared[(first.model, first.format)],
            placement=cpuset.assign(1, topology, matrix.placement.policy, matrix.placement.cpus),
            warmup=0, repetitions=1, memory_bytes=matrix.memory_limit_bytes(), timeout_s=matrix.timeout_s,
            host_fingerprint=host["fingerprint"])
        progress.stage("smoke test: one short CELL per engine x format")
        smoked = smoke.check(lambda s, d: cellrun.run_cell(docker, docker_info, s, d), base, runnable, built,
                             prepared, host, run_dir / "smoke", progress)
        progress.stage_done()
    record["smoke"] = [{"engine": o.engine, "format": o.format, "ok": o.ok, "reason": o.reason, "cached": o.cached,
                        "folder": o.folder} for o in smoked.values()]
    return smoked


def _disk_full(exc: OSError, run_dir: Path) -> str:
    return (f"the results disk is full ({exc.filename or run_dir}: {exc.strerror}); the RUN stopped. Every record "
            f"already in {run_dir} is complete (written atomically); free some space and run again")

