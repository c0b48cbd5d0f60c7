"""The `orchestrate` command line. Only this module prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from pathlib import Path

from orchestrator import __version__, report
from orchestrator.errors import ModelError, OrchestratorError, ResultError, UsageError


class _OnFirstUse:
    """A module imported when first used: `--help`, `validate` and `plan` must not pay for pandas or docker."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


catalogue, images, matrix, models, plan, results = (
    _OnFirstUse(f"orchestrator.{name}") for name in ("catalogue", "images", "matrix", "models", "plan", "results"))
engine_options = _OnFirstUse("orchestrator.engines.options")


def read_run(run_dir: Path):
    """run.json and the validated records of a RUN folder."""
    return results.read_run(run_dir)


def _image_folders() -> list[str]:
    """images/<name>/ folders with a Dockerfile (as images.available(), without loading the Docker SDK)."""
    return sorted(p.parent.name for p in (Path(__file__).resolve().parent.parent / "images").glob("*/Dockerfile"))


EXIT_CODES = """exit codes:
  0    success (for `run`: every CELL finished ok)
  1    `run` finished, but at least one CELL did not end ok (see the TABLE)
  2    invalid input: a MATRIX, catalogue entry or command-line argument
  3    Docker problem: engine unreachable or an IMAGE failed to build
  4    model problem: a model could not be made or failed verification
  5    results problem: a RUN folder or RESULT is missing or fails its schema
  6    `compare --fail-on` (or `reproduce --fail-on`): a CELL got slower than allowed, or was not comparable
  130  interrupted (Ctrl-C); the RUN's containers are removed
"""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_validate(args) -> int:
    from orchestrator import cpuset, sysinfo

    loaded = matrix.load(args.matrix)
    cells = plan.expand(loaded)
    cpuset.place(cells, loaded, sysinfo.topology())  # what `run` refuses on this host, validate refuses first
    for warning in loaded.warnings:
        _say(f"warning: {warning}")
    print(f"{args.matrix}: valid MATRIX, {len(cells)} cells")
    return 0


def cmd_plan(args) -> int:
    cells = plan.expand(matrix.load(args.matrix))
    if args.github_matrix:
        print(json.dumps(plan.github_matrix(cells, args.shards or 1), separators=(",", ":")))
    elif args.shards and args.json:
        print(json.dumps(plan.shards_json(cells, args.shards), indent=2))
    elif args.shards:
        for number, part in enumerate(plan.split(cells, args.shards), 1):
            print(f"shard {number}/{args.shards}: {len(part)} cells")
            for cell in part:
                print(f"  {cell.cell_id}  {cell.label()}")
        print(f"{len(cells)} cells in {args.shards} shards")
    elif args.json:
        print(json.dumps([plan.to_json(c) for c in cells], indent=2))
    else:
        for cell in cells:
            print(f"{cell.cell_id}  {cell.label()}")
        print(f"{len(cells)} cells")
    return 0


def cmd_merge(args) -> int:
    from orchestrator import combine

    merged = combine.combine(combine.load([Path(d) for d in args.run_dirs]))
    written = combine.write(merged, Path(args.out))
    print(combine.summary(merged))
    print(f"TABLE: {written['cells.md']} (also cells.csv, cells.json, repetitions.*)")
    for cell_id, reason in merged.refused.items():
        _say(f"refused {cell_id}: {reason}")
    missing = combine.unmeasured(merged.cells) if args.require_measured else []
    for line in missing:
        _say(f"not measured: {line}")
    return ResultError.exit_code if merged.refused or missing else 0


def cmd_run(args) -> int:
    from orchestrator.run import execute_run

    resumed = None
    if args.resume:  # the MATRIX, shard and seed are the RUN's own, from its run.json
        from orchestrator import resume

        if args.shard or args.matrix is not None:
            raise UsageError("--resume takes the MATRIX and shard from the RUN's run.json: give neither")
        resumed, loaded, shard = resume.load(Path(args.resume))
        args.results = str(Path(args.resume).resolve().parent)
    else:
        loaded = matrix.load(args.matrix or "matrix.yaml")
        shard = plan.parse_shard(args.shard) if args.shard else None
    for warning in loaded.warnings:
        _say(f"warning: {warning}")
    from orchestrator import progress as run_progress

    # A live view in a terminal; plain lines on stderr when piped; nothing with -q.
    events = (run_progress.Events(lambda _: None) if args.quiet else run_progress.LiveView()
              if sys.stderr.isatty() else run_progress.Events(_say))
    try:
        run_dir = execute_run(loaded, Path(args.results), events, shard=shard, resume_run=resumed)
    finally:
        events.close()
    run, records = read_run(run_dir)
    failed = [r for r in records if r["status"] != "ok"]
    if args.json:
        print(json.dumps(run_progress.summary(run, run_dir, records), indent=2))
        return 1 if failed else 0
    print(f"RUN {run['run_id']}: {len(records) - len(failed)} ok, {len(failed)} not ok")
    print(f"TABLE: {run_dir / 'tables' / 'cells.md'} (also cells.csv, cells.json, repetitions.*)")
    print(f"REPORT: {run_dir / 'report.html'} (charts, environment and the sortable TABLE; opens offline)")
    return 1 if failed else 0


def cmd_build(args) -> int:
    from orchestrator.dockerapi import Docker

    names = args.images or [e.image_dir for e in _engines(include_tests=False)]
    buildargs = dict(_pair(a) for a in args.build_arg)
    docker = Docker()
    logs = Path(args.logs)
    for name in names:
        built = images.ensure(docker, name, logs, _say, buildargs)
        print(f"{name}: {built.tag} {built.id} ({'built' if built.rebuilt else 'up to date'})")
    return 0


def cmd_report(args) -> int:
    from orchestrator import locks

    results.read_run_file(Path(args.run_dir))  # a run.json that is no bounded regular file is refused before any read
    run = locks.settle(Path(args.run_dir))  # a RUN whose process is gone is marked interrupted
    if run and run.get("status") in ("interrupted", "running", "failed"):
        _say(f"RUN {run.get('run_id')} is {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    broken: list = []  # records that cannot be read: the TABLE holds the others, and the exit code is 5
    written = report.write(Path(args.run_dir), broken)
    print(written[f"cells.{args.format}"].read_text(), end="")
    _say(f"tables written to {Path(args.run_dir) / 'tables'}; report: {written['report.html']}")
    if broken:
        raise ResultError(f"{len(broken)} CELL record(s) could not be read and are left out of the TABLE:\n  "
                          + "\n  ".join(map(str, broken)))
    return 0


def cmd_clean(args) -> int:
    from orchestrator import cgroup, locks
    from orchestrator.dockerapi import Docker

    docker = Docker()
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
    for run_dir in locks.settle_all(Path(args.results)):
        print(f"RUN {run_dir.name} marked interrupted: its orchestrate process is gone")
    if args.images:
        tags = docker.remove_images(images.REPOSITORY + "/")
        print(f"removed {len(tags)} image tag(s)")
    return 0


def cmd_engines(args) -> int:
    for engine in _engines(include_tests=args.all):
        print(f"{engine.name:12} formats: {', '.join(sorted(engine.formats))}")
        print(f"{'':12} {engine.description}")
        for option, meaning in engine_options.describe(engine.options):
            print(f"{'':12} option {option}: {meaning}")
    return 0


def cmd_models(args) -> int:
    root = Path(args.store) if args.store else None
    if args.action == "list":
        rows = models.listing(root)
        if args.json:
            print(json.dumps(rows, indent=2))
        for row in rows if not args.json else []:
            params = f"{row['parameters']:>13,} params" if row["parameters"] else f"{'downloaded':>20}"
            print(f"{row['id']:18} {params}  formats: {', '.join(row['formats'])}")
            print(f"{'':18} prepared: {', '.join(row['prepared']) or 'none'}  ({row['folder']})")
        return 0
    ids = args.ids or list(catalogue.load())
    if args.action == "prepare":
        from orchestrator.dockerapi import Docker

        docker = Docker()
        for model_id in ids:
            entry = catalogue.get(model_id)
            done = models.prepare(docker, model_id, args.format or list(entry.formats), Path(args.logs), _say, root)
            for fmt, item in done.items():
                print(f"{model_id} {fmt}: {item.sha256} {item.size} bytes {item.folder / item.relpath}")
        return 0
    if args.action == "verify":
        bad = []
        for model_id in ids:
            folder = models.folder(catalogue.get(model_id), root)
            if folder.is_dir():
                problems = models.verify(folder)
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
            folder = models.folder(catalogue.get(model_id), root)
            shutil.rmtree(folder, ignore_errors=True)
            print(f"removed {folder}")
        return 0
    raise UsageError(f"unknown models action {args.action}")


FAIL_ON_EXIT = 6  # compare/reproduce --fail-on: the comparison broke a rule


def _compare_outcome(text: str, compared, fail_on: list[str]) -> int:
    """Print a comparison; 6 when a --fail-on rule is broken (listed on stderr)."""
    from orchestrator import compare

    rules = [compare.parse_fail_on(rule) for rule in fail_on]
    print(text, end="")
    broken = compare.failures(compared, rules)
    for line in broken:
        _say(f"fail-on: {line}")
    return FAIL_ON_EXIT if broken else 0


def cmd_compare(args) -> int:
    import tempfile

    from orchestrator import bundle, compare, comparereport

    for rule in args.fail_on:  # a bad rule fails before anything is read
        compare.parse_fail_on(rule)
    noise = compare.fraction(args.noise, "--noise")
    with tempfile.TemporaryDirectory(prefix="orchestrate-compare-") as scratch:
        a, b = bundle.open_run(Path(args.a), Path(scratch)), bundle.open_run(Path(args.b), Path(scratch))
    ignore = tuple(name for item in args.ignore for name in item.split(",") if name)
    compared = compare.compare(a, b, noise, ignore)
    if args.out:
        from orchestrator.reproduce import write_report

        _say(f"report written to {write_report(Path(args.out), a, b, compared, noise)} (also .csv, .json)")
    return _compare_outcome(comparereport.EXPORTERS[args.format](a, b, compared, noise), compared, args.fail_on)


def cmd_bundle(args) -> int:
    from orchestrator import bundle

    out = bundle.write(Path(args.run_dir), Path(args.out) if args.out else None, args.with_images, args.with_models,
                       _say)
    print(f"bundle: {out} ({out.stat().st_size} bytes)")
    return 0


def cmd_reproduce(args) -> int:
    from orchestrator import compare, reproduce

    for rule in args.fail_on:
        compare.parse_fail_on(rule)
    noise = compare.fraction(args.noise, "--noise")
    done = reproduce.reproduce(Path(args.bundle), Path(args.results), args.force, _say, noise=noise)
    _say(f"RUN {done.new.info.run_id} reproduces {done.original.info.run_id}: {done.run_dir}")
    _say(f"compare report: {done.report} (also compare.csv, compare.json)")
    return _compare_outcome(done.report.read_text(), done.compared, args.fail_on)


def _engines(include_tests: bool):
    from orchestrator.engines import ENGINES

    return [e for e in ENGINES.values() if include_tests or not e.test_only]


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise UsageError(f"--build-arg {text!r} must be KEY=VALUE")
    key, value = text.split("=", 1)
    return key, value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="orchestrate",
        description="Benchmark LLM inference engines on CPUs: every CELL of a MATRIX (engine x model x format x "
                    "threads x workload) runs in its own pinned container; RESULTs are validated and merged into "
                    "one comparison TABLE with provenance.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"orchestrate {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text, func, description=None):
        command = sub.add_parser(name, help=help_text, description=description or help_text, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        command.set_defaults(func=func)
        return command

    c = add("run", "run every CELL of a MATRIX and write the TABLE", cmd_run,
            "Build the IMAGEs and models the MATRIX needs, run each CELL in its own container pinned to its own "
            "cores, validate and store each RESULT as it finishes under RESULTS/<run-id>/, then write the TABLEs "
            "(cells.md/csv/json, repetitions.*). A failed CELL is recorded with its reason and the RUN goes on.")
    c.add_argument("matrix", nargs="?", default=None, help="MATRIX file (default: matrix.yaml)")
    c.add_argument("--results", default="results", help="folder for RUN folders (default: results)")
    c.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted or killed RUN in its own folder: run "
                   "only the CELLs (and batches) without an ok record, then re-merge; run.json lists the sessions")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    c.add_argument("--json", action="store_true",
                   help="print a machine-readable summary (run id, paths, counts, each CELL's status and figures)")
    c.add_argument("--shard", metavar="I/N", help="run only shard I of N of the PLAN (see `plan --shards`); "
                   "run.json records the shard and the CI job")

    c = add("plan", "print the CELLs a MATRIX expands to, with their stable ids", cmd_plan)
    c.add_argument("matrix", nargs="?", default="matrix.yaml")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--shards", type=int, metavar="N", help="split the PLAN into N stable shards (the same split on "
                   "every machine; each CELL in exactly one)")
    c.add_argument("--github-matrix", action="store_true",
                   help='print one line of JSON for a GitHub Actions matrix: {"shard": ["1/N", ...]}')

    c = add("merge", "merge RUN folders from several machines or shards into one TABLE", cmd_merge,
            "Merge RUN folders (or folders holding them, such as downloaded CI artifacts) into one TABLE keyed by "
            "machine (architecture + CPU model): the same cells.md/csv/json and repetitions.* as a single RUN, "
            "machines side by side for the same CELL, agreement recomputed per machine. CELLs whose model sha256 "
            "or IMAGE content differ between RUNs are refused with the reason (exit 5).")
    c.add_argument("run_dirs", nargs="+", metavar="DIR", help="RUN folders, or folders holding RUN folders")
    c.add_argument("--out", required=True, help="new folder for the merged TABLEs")
    c.add_argument("--require-measured", action="store_true",
                   help="exit 5 when an ok CELL has no peak memory or CPU time from its cgroup")

    c = add("validate", "check a MATRIX; report every problem with its path and line", cmd_validate)
    c.add_argument("matrix", nargs="?", default="matrix.yaml")

    c = add("build", "build ENGINE IMAGEs (unchanged ones are not rebuilt)", cmd_build,
            "Build images/<name>/ through the Docker engine, tagged orchestrate/<name>:<content hash>. Without "
            "names, builds every engine's IMAGE. Names may also be tool images (modelmaker) or testengine.")
    c.add_argument("images", nargs="*", help=f"image folders under images/ ({', '.join(_image_folders())})")
    c.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra build argument (for example TORCH_INDEX_URL=...)")
    c.add_argument("--logs", default="results/build-logs", help="where build logs go (default: results/build-logs)")

    c = add("report", "regenerate a RUN's TABLEs from its stored RESULTs and print one", cmd_report)
    c.add_argument("run_dir", help="a RUN folder, results/<run-id>")
    c.add_argument("--format", choices=sorted(report.EXPORTERS), default="md", help="what to print (default md)")

    c = add("clean", "list and remove containers and cgroups the orchestrator left (and optionally its images)",
            cmd_clean)
    c.add_argument("--run", help="only containers and cgroups of this run id")
    c.add_argument("--results", default="results",
                   help="mark RUNs here left 'running' by a killed process as interrupted (default: results)")
    c.add_argument("--images", action="store_true", help="also remove orchestrate/* image tags")

    c = add("engines", "list the ENGINEs, the model formats they read and their options", cmd_engines)
    c.add_argument("--all", action="store_true", help="include test doubles")

    c = add("models", "list, prepare, verify or remove catalogue models in the local store", cmd_models,
            "Models are made offline inside pinned containers from catalogue/models.yaml and kept in a local "
            "store (ORCHESTRATE_MODEL_STORE, default ~/.cache/orchestrate/models).")
    c.add_argument("action", choices=["list", "prepare", "verify", "remove"])
    c.add_argument("ids", nargs="*", help="model ids (default: every catalogue entry)")
    c.add_argument("--format", action="append", help="only these formats (prepare); repeatable")
    c.add_argument("--store", help="model store folder (overrides ORCHESTRATE_MODEL_STORE)")
    c.add_argument("--logs", default="results/build-logs", help="where tool logs go")
    c.add_argument("--json", action="store_true", help="machine-readable output (list)")
    c = add("compare", "compare two RUNs (folders or bundles) CELL by CELL, with a verdict per CELL", cmd_compare,
            "Join the CELLs of A and B on their stable ids; for decode and prefill tok/s, TTFT and ITL p50 show the "
            "ratio of medians B/A with a confidence interval from the Mann-Whitney U distribution over the raw "
            "repetitions (Hodges-Lehmann; exact, no resampling) and a verdict: same within noise, faster, slower, or "
            "not comparable with the reasons (model sha256, IMAGE content, engine version, CPU model or code path, "
            "thread placement). Then the two environments side by side.")
    c.add_argument("a", help="the baseline: a RUN folder or a bundle file")
    c.add_argument("b", help="the RUN compared with it: a RUN folder or a bundle file")
    c.add_argument("--format", choices=["md", "csv", "json"], default="md", help="what to print (default md)")
    c.add_argument("--out", help="also write compare.md/csv/json into this folder")
    c.add_argument("--noise", default="5%", help="differences up to this are the same within noise (default 5%%)")
    c.add_argument("--ignore", action="append", default=[], metavar="COORD",
                   help="pair CELLs on their coordinates less these (threads, format, engine_options, "
                        "engine_options.NAME; comma-separated or repeated), e.g. to compare 1 thread with 2")
    c.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help="exit 6 when a metric is slower by more than N (slower:5%%) or a CELL is not comparable "
                        "(not-comparable); repeatable")

    c = add("bundle", "pack a RUN into one file a colleague can reproduce", cmd_bundle,
            "Write RUN_DIR's records and run.json, its MATRIX, the content hashes of every IMAGE's build context, "
            "the git commit, the model manifests and the host snapshot into one tar.gz.")
    c.add_argument("run_dir", help="a RUN folder, results/<run-id>")
    c.add_argument("--out", help="the bundle file (default: <run-id>.orchestrate.tar.gz here)")
    c.add_argument("--with-images", action="store_true", help="add each ENGINE's IMAGE (`docker save`; large)")
    c.add_argument("--with-models", action="store_true", help="add the model files from the model store")

    c = add("reproduce", "re-run a bundle's CELLs on this machine and compare with its numbers", cmd_reproduce,
            "Offline: check that this checkout's IMAGE contexts hash as the bundle's (refuse, naming what differs, "
            "unless --force), load the bundle's images or build them, install or make the models and check every "
            "sha256 (refuse on a difference), run the same CELLs with the same settings, then compare.")
    c.add_argument("bundle", help="a bundle file from `orchestrate bundle`")
    c.add_argument("--results", default="results", help="folder for the new RUN folder (default: results)")
    c.add_argument("--force", action="store_true", help="run even when this checkout's IMAGE contexts differ")
    c.add_argument("--noise", default="5%", help="differences up to this are the same within noise (default 5%%)")
    c.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help="exit 6 when a metric is slower by more than N (slower:5%%) or a CELL is not comparable")
    return top


def main(argv: list[str] | None = None) -> int:
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
