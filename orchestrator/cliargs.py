"""The `orchestrate` command line's arguments: one parser, the exit codes, the build-arg syntax.

cli.py runs the commands; this module only describes them (and imports nothing heavy).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator import __version__
from orchestrator.errors import UsageError
from orchestrator.report import exporters

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


def _image_folders() -> list[str]:
    """images/<name>/ folders with a Dockerfile (as images.available(), without loading the Docker SDK)."""
    return sorted(p.parent.name for p in (Path(__file__).resolve().parent.parent / "images").glob("*/Dockerfile"))


def build_arg(text: str) -> tuple[str, str]:
    """KEY=VALUE of a --build-arg."""
    if "=" not in text:
        raise UsageError(f"--build-arg {text!r} must be KEY=VALUE")
    key, value = text.split("=", 1)
    return key, value


def parser(handlers: Mapping[str, Callable]) -> argparse.ArgumentParser:
    """The argument parser; ``handlers`` maps each command name to the function that runs it."""
    top = argparse.ArgumentParser(
        prog="orchestrate",
        description="Benchmark LLM inference engines on CPUs: every CELL of a MATRIX (engine x model x format x "
                    "threads x workload) runs in its own pinned container; RESULTs are validated and merged into "
                    "one comparison TABLE with provenance.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"orchestrate {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text, description=None):
        command = sub.add_parser(name, help=help_text, description=description or help_text, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        command.set_defaults(func=handlers[name])
        return command

    c = add("run", "run every CELL of a MATRIX and write the TABLE",
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

    c = add("plan", "print the CELLs a MATRIX expands to, with their stable ids")
    c.add_argument("matrix", nargs="?", default="matrix.yaml")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--shards", type=int, metavar="N", help="split the PLAN into N stable shards (the same split on "
                   "every machine; each CELL in exactly one)")
    c.add_argument("--github-matrix", action="store_true",
                   help='print one line of JSON for a GitHub Actions matrix: {"shard": ["1/N", ...]}')
    c.add_argument("--runners", metavar="JSON",
                   help="with --github-matrix: also a \"runner\" list from these runner label sets (a JSON list, "
                        "each a label or a list of labels), as {\"labels\": [...], \"name\": ...}; refuses more "
                        "than 256 jobs (runner label sets x shards)")

    c = add("merge", "merge RUN folders from several machines or shards into one TABLE",
            "Merge RUN folders (or folders holding them, such as downloaded CI artifacts) into one TABLE keyed by "
            "machine (architecture + CPU model): the same cells.md/csv/json and repetitions.* as a single RUN, "
            "machines side by side for the same CELL, agreement recomputed per machine. CELLs whose model sha256 "
            "or IMAGE content differ between RUNs are refused with the reason (exit 5), and so are RUNs measured "
            "with different settings (warm-up, repetitions, memory limit, timeout, rounds) unless "
            "--allow-mixed-settings is given.")
    c.add_argument("run_dirs", nargs="+", metavar="DIR", help="RUN folders, or folders holding RUN folders")
    c.add_argument("--out", required=True, help="new folder for the merged TABLEs")
    c.add_argument("--include-emulated", action="store_true",
                   help="also merge RUNs that ran under emulation with native ones (they stay a machine of their "
                        "own, marked EMULATED); refused otherwise: emulated speed is no architecture's speed")
    c.add_argument("--allow-mixed-settings", action="store_true",
                   help="merge RUNs measured with different settings anyway; the TABLE and report say which differ")
    _baseline_option(c)
    c.add_argument("--require-measured", action="store_true",
                   help="exit 5 when an ok CELL has no peak memory or CPU time from its cgroup")

    c = add("validate", "check a MATRIX; report every problem with its path and line")
    c.add_argument("matrix", nargs="?", default="matrix.yaml")

    c = add("build", "build ENGINE IMAGEs (unchanged ones are not rebuilt)",
            "Build images/<name>/ through the Docker engine, tagged orchestrate/<name>:<content hash>. Without "
            "names, builds every engine's IMAGE. Names may also be tool images (modelmaker) or testengine.")
    c.add_argument("images", nargs="*", help=f"image folders under images/ ({', '.join(_image_folders())})")
    c.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra build argument (for example TORCH_INDEX_URL=...)")
    c.add_argument("--platform", choices=["linux/amd64", "linux/arm64"],
                   help="build for this platform (another architecture than the host's needs qemu-user-static "
                        "registered with binfmt_misc; docs/arm64.md); tagged apart from the host's IMAGEs")
    c.add_argument("--logs", default="results/build-logs", help="where build logs go (default: results/build-logs)")

    c = add("prepare", "build the IMAGEs and make the models a MATRIX needs, without running a CELL",
            "What `run` does before its first CELL, for one or more MATRIXes: build (or find) each ENGINE's IMAGE, "
            "make the models and evaluation texts in the model store. Prints `image TAG` for each IMAGE ready to run "
            "(a CI build job saves these and hands them to the jobs that run the CELLs), then `model` and `text` "
            "lines. An IMAGE that cannot be built is named at the end (exit 3) after the rest is prepared.")
    c.add_argument("matrices", nargs="+", metavar="MATRIX", help="MATRIX files")
    c.add_argument("--logs", default="results/build-logs", help="where build logs go (default: results/build-logs)")

    c = add("report", "regenerate a RUN's TABLEs, summary and report from its stored RESULTs and print one")
    c.add_argument("run_dir", help="a RUN folder, results/<run-id>")
    c.add_argument("--format", choices=sorted(exporters.EXPORTERS), default="md", help="what to print (default md)")
    _baseline_option(c)

    c = add("clean", "list and remove containers and cgroups the orchestrator left (and optionally its images)")
    c.add_argument("--run", help="only containers and cgroups of this run id")
    c.add_argument("--results", default="results",
                   help="mark RUNs here left 'running' by a killed process as interrupted (default: results)")
    c.add_argument("--images", action="store_true", help="also remove orchestrate/* image tags")

    c = add("engines", "list the ENGINEs, the model formats they read and their options")
    c.add_argument("--all", action="store_true", help="include test doubles")

    c = add("models", "list, prepare, verify or remove catalogue models in the local store",
            "Models are made offline inside pinned containers from catalogue/models.yaml and kept in a local "
            "store (ORCHESTRATE_MODEL_STORE, default ~/.cache/orchestrate/models).")
    c.add_argument("action", choices=["list", "prepare", "verify", "remove"])
    c.add_argument("ids", nargs="*", help="model ids (default: every catalogue entry)")
    c.add_argument("--format", action="append", help="only these formats (prepare); repeatable")
    c.add_argument("--store", help="model store folder (overrides ORCHESTRATE_MODEL_STORE)")
    c.add_argument("--logs", default="results/build-logs", help="where tool logs go")
    c.add_argument("--json", action="store_true", help="machine-readable output (list)")
    c = add("compare", "compare two RUNs (folders or bundles) CELL by CELL, with a verdict per CELL",
            "Join the CELLs of A and B on their stable ids; for decode and prefill tok/s, TTFT and ITL p50 show the "
            "Hodges-Lehmann estimate of B/A with its Mann-Whitney interval over the raw repetitions (exact, no "
            "resampling; the verdict and --fail-on read the same interval) and a verdict: same within noise, faster, "
            "slower, or not comparable with the reasons (model sha256, IMAGE content, engine version, CPU model or "
            "code path, thread placement). Then the two environments side by side.")
    c.add_argument("a", help="the baseline: a RUN folder or a bundle file")
    c.add_argument("b", help="the RUN compared with it: a RUN folder or a bundle file")
    c.add_argument("--format", choices=["md", "csv", "json"], default="md", help="what to print (default md)")
    c.add_argument("--out", help="also write compare.md/csv/json/html into this folder")
    c.add_argument("--ignore", action="append", default=[], metavar="COORD",
                   help="pair CELLs on their coordinates less these (threads, format, engine_options, "
                        "engine_options.NAME; comma-separated or repeated), e.g. to compare 1 thread with 2; "
                        "'emulation' also compares CELLs that ran under emulation, and 'image' CELLs whose IMAGE "
                        "was built from other content (another checkout), which are otherwise not comparable")
    _verdict_options(c)

    c = add("bundle", "pack a RUN into one file a colleague can reproduce",
            "Write RUN_DIR's records and run.json, its MATRIX, the content hashes of every IMAGE's build context, "
            "the git commit, the model manifests and the host snapshot into one tar.gz.")
    c.add_argument("run_dir", help="a RUN folder, results/<run-id>")
    c.add_argument("--out", help="the bundle file (default: <run-id>.orchestrate.tar.gz here)")
    c.add_argument("--with-images", action="store_true", help="add each ENGINE's IMAGE (`docker save`; large)")
    c.add_argument("--with-models", action="store_true", help="add the model files from the model store")

    c = add("reproduce", "re-run a bundle's CELLs on this machine and compare with its numbers",
            "Offline: check that this checkout's IMAGE contexts hash as the bundle's (refuse, naming what differs, "
            "unless --force), load the bundle's images or build them, install or make the models and check every "
            "sha256 (refuse on a difference), run the same CELLs with the same settings, then compare.")
    c.add_argument("bundle", help="a bundle file from `orchestrate bundle`")
    c.add_argument("--results", default="results", help="folder for the new RUN folder (default: results)")
    c.add_argument("--force", action="store_true", help="run even when this checkout's IMAGE contexts differ")
    _verdict_options(c)
    return top


def _baseline_option(command) -> None:
    """--baseline: the ENGINE the summary's ratios are to (over the MATRIX's baseline:)."""
    command.add_argument("--baseline", metavar="ENGINE[/FORMAT]",
                         help="the ENGINE (or ENGINE/FORMAT) whose CELL every figure of the summary is a ratio to "
                              "(default: the MATRIX's baseline:, else llama.cpp where the TABLE has it)")


def _verdict_options(command) -> None:
    """--noise and --fail-on: how `compare` and `reproduce` turn ratios into verdicts and an exit code."""
    command.add_argument("--noise", default=None,
                         help="differences up to this are the same within noise (default: derived from the RUNs' "
                              "own rounds where they have two or more, else 5%%)")
    command.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                         help="exit 6 when a metric is slower and its whole interval shows more than N lost "
                              "(slower:5%%), or a CELL is not comparable (not-comparable); repeatable")
