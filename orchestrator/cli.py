"""The `orchestrate` command line. Only this module prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from orchestrator import __version__, catalogue, images, matrix, models, plan, report
from orchestrator.errors import ModelError, OrchestratorError, UsageError
from orchestrator.results import read_run

EXIT_CODES = """exit codes:
  0    success (for `run`: every CELL finished ok)
  1    `run` finished, but at least one CELL did not end ok (see the TABLE)
  2    invalid input: a MATRIX, catalogue entry or command-line argument
  3    Docker problem: engine unreachable or an IMAGE failed to build
  4    model problem: a model could not be made or failed verification
  5    results problem: a RUN folder or RESULT is missing or fails its schema
  130  interrupted (Ctrl-C); the RUN's containers are removed
"""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_validate(args) -> int:
    loaded = matrix.load(args.matrix)
    cells = plan.expand(loaded)
    print(f"{args.matrix}: valid MATRIX, {len(cells)} cells")
    return 0


def cmd_plan(args) -> int:
    cells = plan.expand(matrix.load(args.matrix))
    if args.json:
        print(json.dumps([plan.to_json(c) for c in cells], indent=2))
    else:
        for cell in cells:
            print(f"{cell.cell_id}  {cell.label()}")
        print(f"{len(cells)} cells")
    return 0


def cmd_run(args) -> int:
    from orchestrator.run import execute_run

    loaded = matrix.load(args.matrix)
    run_dir = execute_run(loaded, Path(args.results), _say if not args.quiet else (lambda _: None))
    run, records = read_run(run_dir)
    failed = [r for r in records if r["status"] != "ok"]
    print(f"RUN {run['run_id']}: {len(records) - len(failed)} ok, {len(failed)} not ok")
    print(f"TABLE: {run_dir / 'tables' / 'cells.md'} (also cells.csv, cells.json, repetitions.*)")
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
    written = report.write(Path(args.run_dir))
    print(written[f"cells.{args.format}"].read_text(), end="")
    _say(f"tables written to {Path(args.run_dir) / 'tables'}")
    return 0


def cmd_clean(args) -> int:
    from orchestrator.dockerapi import Docker

    docker = Docker()
    removed = docker.remove_labelled({"orchestrate.run": args.run} if args.run else None)
    print(f"removed {len(removed)} orchestrator container(s)")
    if args.images:
        tags = docker.remove_images(images.REPOSITORY + "/")
        print(f"removed {len(tags)} image tag(s)")
    return 0


def cmd_engines(args) -> int:
    for engine in _engines(include_tests=args.all):
        print(f"{engine.name:12} formats: {', '.join(sorted(engine.formats))}")
        print(f"{'':12} {engine.description}")
        for option, meaning in engine.options.items():
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
    c.add_argument("matrix", nargs="?", default="matrix.yaml", help="MATRIX file (default: matrix.yaml)")
    c.add_argument("--results", default="results", help="folder for RUN folders (default: results)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    c = add("plan", "print the CELLs a MATRIX expands to, with their stable ids", cmd_plan)
    c.add_argument("matrix", nargs="?", default="matrix.yaml")
    c.add_argument("--json", action="store_true", help="machine-readable output")

    c = add("validate", "check a MATRIX; report every problem with its path and line", cmd_validate)
    c.add_argument("matrix", nargs="?", default="matrix.yaml")

    c = add("build", "build ENGINE IMAGEs (unchanged ones are not rebuilt)", cmd_build,
            "Build images/<name>/ through the Docker engine, tagged orchestrate/<name>:<content hash>. Without "
            "names, builds every engine's IMAGE. Names may also be tool images (modelmaker) or testengine.")
    c.add_argument("images", nargs="*", help=f"image folders under images/ ({', '.join(images.available())})")
    c.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra build argument (for example TORCH_INDEX_URL=...)")
    c.add_argument("--logs", default="results/build-logs", help="where build logs go (default: results/build-logs)")

    c = add("report", "regenerate a RUN's TABLEs from its stored RESULTs and print one", cmd_report)
    c.add_argument("run_dir", help="a RUN folder, results/<run-id>")
    c.add_argument("--format", choices=sorted(report.EXPORTERS), default="md", help="what to print (default md)")

    c = add("clean", "remove containers the orchestrator left (and optionally its images)", cmd_clean)
    c.add_argument("--run", help="only containers of this run id")
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
