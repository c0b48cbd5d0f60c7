"""Run a colleague's bundle again on this machine, offline, and compare with their numbers.

Order of work: unpack the bundle; refuse it when this checkout's IMAGE contexts hash to
other tags (unless forced: then the differing files are named and the RUN goes on);
load the bundle's image archives, if any; install its model files into the store when
the store lacks them, make what is missing, recompute every model sha256 and refuse on a
difference (naming the model and both hashes); then run the bundle's MATRIX text (the
same CELL ids, settings and shard) with run.execute_run, and compare the new RUN with
the bundle's (compare.py), writing the report into the new RUN's ``compare/`` folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.compare import bundle, comparepage, comparereport, ratios
from orchestrator.errors import ModelError, OrchestratorError
from orchestrator.files import writing
from orchestrator.host.dockerapi import Docker
from orchestrator.matrix import matrixfile
from orchestrator.models import modelstore
from orchestrator.plan import planner
from orchestrator.results import rundata
from orchestrator.run import execute_run

MakeModels = Callable[[list[str]], Mapping[str, str]]  # ['<model>/<format>', ...] -> sha256 of each, made here


class NotReproducible(OrchestratorError):
    """This checkout cannot reproduce the bundle as it is; says what differs."""

    exit_code = 2


@dataclass(frozen=True)
class Reproduced:
    """A reproduction: the new RUN folder, what was compared, and what was overridden with --force."""

    run_dir: Path
    original: rundata.Run
    new: rundata.Run
    compared: tuple[ratios.CellComparison, ...]
    forced: tuple[str, ...]
    report: Path


def context_problems(images: Mapping[str, dict], current: Mapping[str, dict]) -> list[str]:
    """What differs between the bundle's IMAGE contexts and this checkout's (pure): tag and files."""
    problems = []
    for engine, row in images.items():
        theirs, mine = row["context"], current[engine]
        if row["tag"] != mine["tag"]:
            changed = sorted(f for f in set(theirs["files"]) | set(mine["files"])
                             if theirs["files"].get(f) != mine["files"].get(f))
            detail = ", ".join(changed[:12]) + (f" and {len(changed) - 12} more" if len(changed) > 12 else "")
            stale = "" if row.get("context_matches_run", True) else \
                " (the bundle's own checkout already differed from the RUN's image)"
            problems.append(f"images/{row['image_dir']}: the RUN used {row['tag']}, this checkout builds "
                            f"{mine['tag']}{stale}" + (f"; files that differ: {detail}" if detail else
                                                       "; same files, other build arguments or base reference"))
    return problems


def check_models(expected: Mapping[str, str], made: Mapping[str, str], notes: Mapping[str, str] | None = None) -> None:
    """Refuse when a model this checkout makes (or the bundle brings) has another sha256 than the RUN's."""
    wrong = [f"{key}: the bundle's RUN used sha256 {sha}, this machine has {made.get(key) or 'no file'}"
             + (f" ({notes[key]})" if notes and key in notes else "")
             for key, sha in expected.items() if made.get(key) != sha]
    if wrong:
        raise ModelError("the bundle's models differ from what this checkout makes, so its numbers are not "
                         "reproducible here:\n  " + "\n  ".join(wrong))


def recipe_notes(document: dict) -> dict[str, str]:
    """'<model>/<format>' -> how this checkout's catalogue recipe differs from the bundle's, where it does."""
    notes = {}
    for key, row in document["models"].items():
        theirs, mine = (row.get("recipe") or {}).get("recipe_hash"), (bundle.recipe(key) or {}).get("recipe_hash")
        if theirs and theirs != mine:
            notes[key] = f"catalogue recipe {theirs} in the bundle, {mine or 'none'} in this checkout"
    return notes


def install_models(folder: Path, document: dict, store: Path, progress: Callable[[str], None]) -> list[str]:
    """Copy the bundle's model folders into the store where the store has no such folder; return their names."""
    installed = []
    for name in sorted({row["folder"] for row in document["models"].values() if row.get("included")}):
        source, target = folder / "models" / name, store / name
        if (target / "manifest.json").is_file() or not source.is_dir():
            continue
        progress(f"installing model files {name} from the bundle into {store}")
        store.mkdir(parents=True, exist_ok=True)
        staging = store / f".bundle-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        staging.rename(target)
        installed.append(name)
    return installed


def make_models(docker, logs_dir: Path, progress: Callable[[str], None]) -> MakeModels:
    """The real MakeModels: prepare each format in the store (making it offline if missing) and hash its bytes."""
    def made(keys: list[str]) -> dict[str, str]:
        wanted: dict[str, list[str]] = {}
        for key in keys:
            model_id, fmt = key.split("/", 1)
            wanted.setdefault(model_id, []).append(fmt)
        out = {}
        for model_id, formats in wanted.items():
            for fmt, item in modelstore.prepare(docker, model_id, formats, logs_dir, progress).items():
                progress(f"hashing {model_id}/{fmt}")
                out[f"{model_id}/{fmt}"] = modelstore.sha256_of(item.folder / item.relpath, item.folder)
        return out

    return made


def reproduce(bundle_path: Path, results_root: Path, force: bool = False, progress: Callable[[str], None] = print,
              models_maker: MakeModels | None = None, execute: Callable | None = None,
              noise: float | None = None) -> Reproduced:
    """Run the bundle's CELLs here and compare; raise NotReproducible / ModelError when refused."""
    with tempfile.TemporaryDirectory(prefix="orchestrate-reproduce-") as scratch:
        folder = bundle.extract(Path(bundle_path), Path(scratch) / "bundle")
        document = bundle.read_manifest(folder)
        original = rundata.load(folder / "run")
        original = rundata.Run(original.info, original.cells, str(bundle_path))
        current = {engine: bundle.context_listing(row["image_dir"]) for engine, row in document["images"].items()}
        problems = context_problems(document["images"], current)
        if problems and not force:
            made = document["orchestrator"]
            commit = (made.get("git_commit") or "unknown") + (" plus its uncommitted changes" if made.get("git_dirty")
                                                            else "")
            raise NotReproducible(f"this checkout's IMAGE contexts differ from the bundle's (the bundle was made from "
                                  f"git commit {commit}; or pass --force to run this checkout's images anyway):\n  "
                                  + "\n  ".join(problems))
        for problem in problems:
            progress(f"warning (--force): {problem}")
        docker = None
        archives = [folder / row["archive"] for row in document["images"].values() if row.get("archive")]
        if archives or models_maker is None:
            docker = Docker()
        for archive in archives:
            progress(f"loading {archive.name} from the bundle")
            progress("  loaded " + ", ".join(docker.load(archive)))
        logs_dir = Path(results_root) / "build-logs"
        if models_maker is None:
            install_models(folder, document, modelstore.store_root(), progress)
            models_maker = make_models(docker, logs_dir, progress)
        check_models(original.info.models, models_maker(list(original.info.models)), recipe_notes(document))
        loaded = matrixfile.parse(original.info.matrix_text, f"{bundle_path}:matrix.yaml")
        shard = planner.Shard(*original.info.shard) if original.info.shard else None
        run_dir = (execute or execute_run)(loaded, Path(results_root), progress, shard=shard,
                          reproduces={"bundle": str(bundle_path), "run_id": original.info.run_id,
                                      "forced": problems})
    new = rundata.load(run_dir)
    chosen = ratios.thresholds(original, new, noise)
    compared = ratios.compare(original, new, chosen)
    report = write_report(run_dir / "compare", original, new, compared, chosen)
    return Reproduced(run_dir, original, new, compared, tuple(problems), report)


def write_report(folder: Path, a: rundata.Run, b: rundata.Run, compared, noise: ratios.Thresholds) -> Path:
    """compare.md, compare.csv, ratios.json and compare.html in ``folder``; returns the Markdown file."""


    writing.make_folder(folder)
    writing.write_text(folder / "compare.md", comparereport.to_markdown(a, b, compared, noise), folder)
    writing.write_text(folder / "compare.csv", comparereport.to_csv(compared), folder)
    writing.write_json(folder / "ratios.json", json.loads(comparereport.to_json(a, b, compared, noise)), folder)
    writing.write_text(folder / "compare.html", comparepage.compare_page(a, b, compared, noise), folder)
    return folder / "compare.md"
