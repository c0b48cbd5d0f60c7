"""The `orchestrate` command line. Only this module prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

from orchestrator import cliargs
from orchestrator.errors import (
    DockerError,
    ModelError,
    OrchestratorError,
    ResultError,
    UsageError,
)
from orchestrator.files import terminal


class _OnFirstUse:
    """A module imported when first used: `--help`, `validate` and `plan` must not pay for pandas or docker."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


# Every module a command needs, imported when the command first uses it: `--help`, `validate` and `plan`
# must not load pandas or the Docker SDK. This table is the one place the command line defers imports.
(bundle, catalogue, cgroup, ci, comparereport, conductor, cpuset, dockerapi, engines, imagebuild, machines,
 matrixfile, mergereport, modelstore, ownership, planner, progress, ratios, recordfiles, reproduce, resume, sysinfo,
 writer) = (_OnFirstUse(f"orchestrator.{name}") for name in (
    "compare.bundle", "models.catalogue", "host.cgroup", "host.ci", "compare.comparereport", "run",
    "host.cpuset", "host.dockerapi", "engines", "images.imagebuild", "merge.machines", "matrix.matrixfile",
    "report.mergereport", "models.modelstore", "execute.ownership", "plan.planner", "execute.progress",
    "compare.ratios", "results.recordfiles", "reproduce", "execute.resume", "host.sysinfo", "report.writer"))
engine_options = _OnFirstUse("orchestrator.engines.options")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_validate(args) -> int:
    loaded = matrixfile.load(args.matrix)
    cells = planner.expand(loaded)
    cpuset.place(cells, loaded, sysinfo.topology())  # what `run` refuses on this host, validate refuses first
    for warning in loaded.warnings:
        _say(f"warning: {warning}")
    print(f"{args.matrix}: valid MATRIX, {len(cells)} cells")
    return 0


def cmd_plan(args) -> int:
    if args.shards is not None and args.shards < 1:
        raise UsageError(f"--shards {args.shards}: a PLAN is split into 1 or more shards")
    cells = planner.expand(matrixfile.load(args.matrix))
    if args.runners is not None and not args.github_matrix:
        raise UsageError("--runners goes with --github-matrix")
    if args.github_matrix:
        found = planner.github_matrix(cells, args.shards or 1)
        if args.runners is not None:  # each shard on each runner label set: one job per pair
            runners = ci.runner_sets(args.runners)
            ci.check_job_count(len(runners), len(found["shard"]))
            found = {"runner": runners, **found}
        print(json.dumps(found, separators=(",", ":")))
    elif args.shards and args.json:
        print(json.dumps(planner.shards_json(cells, args.shards), indent=2))
    elif args.shards:
        for number, part in enumerate(planner.split(cells, args.shards), 1):
            print(f"shard {number}/{args.shards}: {len(part)} cells")
            for cell in part:
                print(f"  {cell.cell_id}  {cell.label()}")
        print(f"{len(cells)} cells in {args.shards} shards")
    elif args.json:
        print(json.dumps([planner.to_json(c) for c in cells], indent=2))
    else:
        for cell in cells:
            print(f"{cell.cell_id}  {cell.label()}")
        print(f"{len(cells)} cells")
    return 0


def cmd_merge(args) -> int:
    merged = machines.combine(machines.load([Path(d) for d in args.run_dirs]), args.allow_mixed_settings,
                              args.include_emulated)
    for line in merged.mixed:
        _say(f"warning: settings differ between the RUNs: {line}")
    written = mergereport.write(merged, Path(args.out), args.baseline)
    print(mergereport.summary(merged))
    print(f"TABLE: {written['cells.md']} (also cells.csv, cells.json, repetitions.*)")
    print(f"SUMMARY: {written['summary.md']} (report document: {written['report.md']})")
    print(f"REPORT: {written['report.html']}")
    for cell_id, reason in merged.refused.items():
        _say(f"refused {cell_id}: {reason}")
    missing = machines.unmeasured(merged.cells) if args.require_measured else []
    for line in missing:
        _say(f"not measured: {line}")
    return ResultError.exit_code if merged.refused or missing else 0


def cmd_run(args) -> int:
    resumed = None
    if args.resume:  # the MATRIX, shard and seed are the RUN's own, from its run.json
        if args.shard or args.matrix is not None:
            raise UsageError("--resume takes the MATRIX and shard from the RUN's run.json: give neither")
        resumed, loaded, shard = resume.load(Path(args.resume))
        args.results = str(Path(args.resume).resolve().parent)
    else:
        loaded = matrixfile.load(args.matrix or "matrix.yaml")
        shard = planner.parse_shard(args.shard) if args.shard else None
    for warning in loaded.warnings:
        _say(f"warning: {warning}")
    # A live view in a terminal; plain lines on stderr when piped; nothing with -q.
    events = (progress.Events(lambda _: None) if args.quiet else progress.LiveView(_live_console())
              if sys.stderr.isatty() else progress.Events(_say))
    try:
        run_dir = conductor.execute_run(loaded, Path(args.results), events, shard=shard, resume_run=resumed)
    finally:
        events.close()
    run, records = recordfiles.read_run(run_dir)
    failed = [r for r in records if r["status"] != "ok"]
    if args.json:
        print(json.dumps(progress.summary(run, run_dir, records), indent=2))
        return 1 if failed else 0
    print(f"RUN {run['run_id']}: {len(records) - len(failed)} ok, {len(failed)} not ok")
    print(f"TABLE: {run_dir / 'tables' / 'cells.md'} (also cells.csv, cells.json, repetitions.*)")
    print(f"SUMMARY: {run_dir / 'tables' / 'summary.md'} (report document: {run_dir / 'report.md'})")
    print(f"REPORT: {run_dir / 'report.html'} (summary, charts, environment and the sortable TABLE; opens offline)")
    return 1 if failed else 0


def cmd_build(args) -> int:
    names = args.images or [e.image_dir for e in _engines(include_tests=False)]
    buildargs = dict(cliargs.build_arg(a) for a in args.build_arg)
    docker = dockerapi.Docker()
    logs = Path(args.logs)
    for name in names:
        built = imagebuild.ensure(docker, name, logs, _say, buildargs, args.platform)
        print(f"{name}: {built.tag} {built.id} ({'built' if built.rebuilt else 'up to date'}, "
              f"{built.architecture or 'architecture unknown'})")
    return 0


def cmd_prepare(args) -> int:
    def images_ready(found: dict) -> None:
        # One line per IMAGE ready to run (`image TAG`, each tag once), printed before any model is made: a CI
        # job saves these tags even when a model then fails.
        for tag in dict.fromkeys(image["tag"] for image in found.values() if not image.get("error")):
            print(f"image {tag}", flush=True)

    done = conductor.prepare([matrixfile.load(m) for m in args.matrices], Path(args.logs), _say, images_ready)
    failed = {engine: image for engine, image in done["images"].items() if image.get("error")}
    for name, item in done["models"].items():
        print(f"model {name} {item['sha256']} {item['path']}")
    for name, item in done.get("texts", {}).items():
        print(f"text {name} {item['ids_sha256']} {item['path']}")
    if failed:  # everything else is prepared; a RUN would record these ENGINEs' CELLs unavailable
        raise DockerError(f"{len(failed)} IMAGE(s) cannot be built here:\n  "
                          + "\n  ".join(f"{engine}: {image['error']}" for engine, image in failed.items()))
    return 0


def cmd_report(args) -> int:
    recordfiles.read_run_file(Path(args.run_dir))  # a run.json that is no bounded regular file is refused before any read
    run = ownership.settle(Path(args.run_dir))  # a RUN whose process is gone is marked interrupted
    if run and run.get("status") in ("interrupted", "running", "failed"):
        _say(f"RUN {run.get('run_id')} is {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    broken: list = []  # records that cannot be read: the TABLE holds the others, and the exit code is 5
    written = writer.write(Path(args.run_dir), broken, args.baseline)
    print(written[f"cells.{args.format}"].read_text(encoding="utf-8"), end="")
    _say(f"tables written to {Path(args.run_dir) / 'tables'}; report: {written['report.html']}")
    if broken:
        shown = "\n  ".join(map(str, broken[:MAX_LISTED]))
        more = f"\n  ... and {len(broken) - MAX_LISTED} more" if len(broken) > MAX_LISTED else ""
        raise ResultError(f"{len(broken)} CELL record(s) could not be read and are left out of the TABLE:\n  "
                          f"{shown}{more}")
    return 0


def cmd_clean(args) -> int:
    docker = dockerapi.Docker()
    labels = {"orchestrate.run": args.run} if args.run else None
    for name in docker.list_labelled(labels):
        print(f"removing container {name}")
    removed = docker.remove_labelled(labels)
    print(f"removed {len(removed)} orchestrator container(s)")
    info = docker.info()
    driver, version = info.get("cgroup_driver") or "cgroupfs", int(info.get("cgroup_version") or 1)
    for parent in cgroup.leftovers(driver, version, args.run):
        left = cgroup.remove(driver, version, parent)
        print(f"removed cgroup {parent}" if not left else f"cgroup {parent} left: {'; '.join(left)}")
    for run_dir in ownership.settle_all(Path(args.results)):
        print(f"RUN {run_dir.name} marked interrupted: its orchestrate process is gone")
    if args.images:
        tags = docker.remove_images(imagebuild.REPOSITORY + "/")
        print(f"removed {len(tags)} image tag(s)")
    return 0


def cmd_engines(args) -> int:
    for engine in _engines(include_tests=args.all):
        print(f"{engine.name:12} formats: {', '.join(sorted(engine.formats))}")
        print(f"{'':12} workloads: {', '.join(sorted(engine.workloads))}")
        print(f"{'':12} {engine.description}")
        for option, meaning in engine_options.describe(engine.options):
            print(f"{'':12} option {option}: {meaning}")
    return 0


def cmd_models(args) -> int:
    root = Path(args.store) if args.store else None
    if args.action == "list":
        rows = modelstore.listing(root)
        if args.json:
            print(json.dumps(rows, indent=2))
        for row in rows if not args.json else []:
            params = f"{row['parameters']:>13,} params" if row["parameters"] else f"{'downloaded':>20}"
            print(f"{row['id']:18} {params}  formats: {', '.join(row['formats'])}")
            print(f"{'':18} prepared: {', '.join(row['prepared']) or 'none'}  ({row['folder']})")
            if row["problem"]:
                print(f"{'':18} problem: {row['problem']}")
        return 0
    ids = args.ids or list(catalogue.load())
    if args.action == "prepare":
        docker = dockerapi.Docker()
        for model_id in ids:
            entry = catalogue.get(model_id)
            done = modelstore.prepare(docker, model_id, args.format or list(entry.formats), Path(args.logs), _say, root)
            for fmt, item in done.items():
                print(f"{model_id} {fmt}: {item.sha256} {item.size} bytes {item.folder / item.relpath}")
        return 0
    if args.action == "verify":
        bad = []
        for model_id in ids:
            folder = modelstore.folder(catalogue.get(model_id), root)
            if folder.is_dir():
                problems = modelstore.verify(folder)
                bad += problems
                print(f"{model_id}: {'ok' if not problems else 'MISMATCH'} ({folder})")
        for line in bad:
            print(f"  {line}")
        if bad:
            raise ModelError(
                f"{len(bad)} file(s) failed verification")
        return 0
    if args.action == "remove":
        for model_id in ids:
            folder = modelstore.folder(catalogue.get(model_id), root)
            print(modelstore.remove(folder))
        return 0
    raise UsageError(f"unknown models action {args.action}")


FAIL_ON_EXIT = 6  # compare/reproduce --fail-on: the comparison broke a rule


def _compare_outcome(text: str, compared, fail_on: list[str]) -> int:
    """Print a comparison; 6 when a --fail-on rule is broken (listed on stderr)."""
    rules = [ratios.parse_fail_on(rule) for rule in fail_on]
    print(text, end="")
    broken = ratios.failures(compared, rules)
    for line in broken:
        _say(f"fail-on: {line}")
    return FAIL_ON_EXIT if broken else 0


def _verdict_settings(args) -> float | None:
    """The --noise fraction (None: derive it from the RUNs' rounds, else 5 %), after checking every --fail-on rule:
    bad input fails before anything is read."""
    for rule in args.fail_on:
        ratios.parse_fail_on(rule)
    return ratios.fraction(args.noise, "--noise") if args.noise is not None else None


def cmd_compare(args) -> int:
    noise = _verdict_settings(args)
    with tempfile.TemporaryDirectory(prefix="orchestrate-compare-") as scratch:
        a, b = bundle.open_run(Path(args.a), Path(scratch)), bundle.open_run(Path(args.b), Path(scratch))
    ignore = tuple(name for item in args.ignore for name in item.split(",") if name)
    chosen = ratios.thresholds(a, b, noise)
    compared = ratios.compare(a, b, chosen, ignore)
    if args.out:
        _say(f"report written to {reproduce.write_report(Path(args.out), a, b, compared, chosen)} (also .csv, .json, .html)")
    return _compare_outcome(comparereport.EXPORTERS[args.format](a, b, compared, chosen), compared, args.fail_on)


def cmd_bundle(args) -> int:
    out = bundle.write(Path(args.run_dir), Path(args.out) if args.out else None, args.with_images, args.with_models,
                       _say)
    print(f"bundle: {out} ({out.stat().st_size} bytes)")
    return 0


def cmd_reproduce(args) -> int:
    noise = _verdict_settings(args)
    done = reproduce.reproduce(Path(args.bundle), Path(args.results), args.force, _say, noise=noise)
    _say(f"RUN {done.new.info.run_id} reproduces {done.original.info.run_id}: {done.run_dir}")
    _say(f"compare report: {done.report} (also compare.csv, ratios.json, compare.html)")
    return _compare_outcome(done.report.read_text(encoding="utf-8"), done.compared, args.fail_on)


def _engines(include_tests: bool):
    return [e for e in engines.ENGINES.values() if include_tests or not e.test_only]


def parser() -> argparse.ArgumentParser:
    """The `orchestrate` argument parser, each command bound to its cmd_* function here."""
    handlers = {name[len("cmd_"):]: func for name, func in globals().items() if name.startswith("cmd_")}
    return cliargs.parser(handlers)


MAX_LISTED = 20  # problems listed one by one on the terminal; the rest are counted


_RAW_STDERR = None  # the terminal itself, for the live view's own escape sequences


def _live_console():
    from rich.console import Console

    return Console(file=_RAW_STDERR or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; everything it prints has other people's control characters shown as escapes."""
    global _RAW_STDERR
    out, err = sys.stdout, sys.stderr
    _RAW_STDERR = err
    sys.stdout, sys.stderr = terminal.SafeStream(out), terminal.SafeStream(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
