"""The hostile inputs of issue 8 as data: MATRIX files, RESULT files and RUN folders.

The unit tests (test_hostile_*.py) run every case and check its outcome; running this
module (``.venv/bin/python -m tests.unit.hostile_cases``) runs them again and prints the
rows of docs/hostile-inputs.md from what they actually did, not from what they should do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator import cli
from orchestrator.files import writing
from orchestrator.results.judge import judge
from tests.conftest import GOOD_MATRIX
from tests.unit.records import record

# ---------------------------------------------------------------- MATRIX files

@dataclass(frozen=True)
class MatrixCase:
    """A MATRIX file fed to `orchestrate validate`: the exit code and words expected on stderr."""

    name: str
    what: str
    content: bytes | None  # None: ``make`` builds the path itself
    exit_code: int
    words: str
    make: Callable[[Path], None] | None = None


def _m(extra: str) -> bytes:
    return (GOOD_MATRIX + extra).encode()


def _replace(old: str, new: str) -> bytes:
    assert old in GOOD_MATRIX
    return GOOD_MATRIX.replace(old, new).encode()


def _laughs(levels: int, inside_options: bool) -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    if inside_options:  # schema-valid: engine options are free-form
        body = "\n".join("      " + line for line in lines)
        return GOOD_MATRIX.replace("  - name: llama.cpp\n", f"  - name: llama.cpp\n    options:\n{body}\n").encode()
    return ("\n".join(lines) + "\n").encode()


MATRIX_CASES = [
    MatrixCase("billion-laughs", "nested aliases (9 levels x 9 aliases, 400 bytes)", _laughs(9, False), 2,
               "expands to"),
    MatrixCase("alias-bomb-in-options", "the same bomb inside a schema-valid engines[0].options", _laughs(7, True), 2,
               "expands to"),
    MatrixCase("recursive-alias", "an alias inside the node it names: `a: &a [*a]`", b"a: &a [*a]\n", 2, "recursive"),
    MatrixCase("too-large", "a 2 MiB MATRIX (a long comment)", _m("#" + "x" * (2 << 20) + "\n"), 2,
               "more than the limit"),
    MatrixCase("fifo", "a FIFO in place of the MATRIX file", None, 2, "a FIFO",
               make=lambda p: os.mkfifo(p)),
    MatrixCase("directory", "a directory in place of the MATRIX file", None, 2, "a directory",
               make=lambda p: p.mkdir()),
    MatrixCase("missing", "a path that does not exist", None, 2, "does not exist", make=lambda p: None),
    MatrixCase("latin-1", "a byte that is not UTF-8 (0xe9, Latin-1 'é') in a prompt",
               _replace('"Once upon a time"', '"CafX"').replace(b"CafX", b"Caf\xe9"), 2,
               "not UTF-8: byte 0xe9 at line 10"),
    MatrixCase("utf-16", "a UTF-16 file (byte order mark FF FE)", "\ufeff".encode("utf-16-le") + b"v\x00", 2,
               "not UTF-8"),
    MatrixCase("nul-byte", "a NUL byte inside a prompt", _replace("Once upon", "Once\0upon"), 2,
               "NUL byte at line 10"),
    MatrixCase("control-char", "a BEL control character (0x07)", _replace("Once upon", "Once\x07upon"), 2,
               "U+0007 at line 10"),
    MatrixCase("duplicate-top-key", "`threads` given twice", _m("threads: [4]\n"), 2,
               "'threads' appears twice in one mapping: at line 7 and line 13"),
    MatrixCase("duplicate-nested-key", "`gen_tokens` twice in one workload", _m("    gen_tokens: 9\n"), 2,
               "'gen_tokens' appears twice"),
    MatrixCase("misspelled-key", "`repetitons: 3` (misspelled top-level key)", _m("repetitons: 3\n"), 2,
               "m.yaml:13: repetitons: Additional properties are not allowed: unknown key 'repetitons'; did you mean "
               "'repetitions'?"),
    MatrixCase("yaml11-float", "`timeout_s: 1e3` (YAML 1.1 reads it as a string)", _m("timeout_s: 1e3\n"), 2,
               "YAML 1.1 reads '1e3' as a string"),
    MatrixCase("timeout-nan", "`timeout_s: .nan`", _m("timeout_s: .nan\n"), 2, "would never time out"),
    MatrixCase("timeout-inf", "`timeout_s: .inf`", _m("timeout_s: .inf\n"), 2, "greater than the maximum of 604800"),
    MatrixCase("timeout-huge", "`timeout_s: 1.0e+300`", _m("timeout_s: 1.0e+300\n"), 2, "maximum of 604800"),
    MatrixCase("nan-in-options", "`.nan` inside engine options (would break the job file)", _replace(
        "  - name: llama.cpp\n", "  - name: llama.cpp\n    options: {kv_cache_type: .nan}\n"), 2,
               "nan is not a finite number"),
    MatrixCase("memory-zero", '`memory_limit: "0"`', _m('memory_limit: "0"\n'), 2, "no memory limit at all"),
    MatrixCase("memory-rounds-to-zero", '`memory_limit: "0.0001k"` (0.1 byte)', _m('memory_limit: "0.0001k"\n'), 2,
               "0 bytes"),
    MatrixCase("memory-too-small", '`memory_limit: 1m`', _m("memory_limit: 1m\n"), 2, "at least 16m"),
    MatrixCase("memory-huge", '`memory_limit: 99999999999g`', _m("memory_limit: 99999999999g\n"), 2,
               "larger than any machine"),
    MatrixCase("memory-400-digits", "a memory_limit of 400 digits", _m(f"memory_limit: \"{'9' * 400}\"\n"), 2,
               "memory_limit"),
    MatrixCase("int-5000-digits", "a thread count of 5000 digits (past Python's int-string limit)",
               _replace("threads: [1, 2]", f"threads: [1, {'7' * 5000}]"), 2, "an integer of 5000 digits"),
    MatrixCase("deep-nesting", "a list nested 5000 deep", _m("description: " + "[" * 5000 + "]" * 5000 + "\n"), 2,
               "nested too deeply"),
    MatrixCase("nested-options", "engine options nested 40 levels", _replace(
        "  - name: llama.cpp\n", "  - name: llama.cpp\n    options: " + "{a: " * 40 + "1" + "}" * 40 + "\n"), 2,
               "nested 44 levels deep"),
    MatrixCase("date-value", "`description: 2026-11-29` (YAML reads a date)", _m("description: 2026-11-29\n"), 2,
               "read as YAML type 'tag:yaml.org,2002:timestamp'"),
    MatrixCase("python-tag", "`!!python/object` tag", _m("description: !!python/object:os.system ls\n"), 2,
               "which JSON cannot hold"),
    MatrixCase("set-value", "a YAML `!!set`", _m("description: !!set {a, b}\n"), 2, "use a list"),
    MatrixCase("integer-key", "an integer key in engine options", _replace(
        "  - name: llama.cpp\n", "  - name: llama.cpp\n    options: {1: true}\n"), 2, "is not a string"),
    MatrixCase("two-documents", "two YAML documents in one file", _m("---\nversion: 1\n"), 2,
               "expected a single document"),
    MatrixCase("empty", "an empty file", b"", 2, "must be a YAML mapping"),
    MatrixCase("top-level-list", "a list instead of a mapping", b"- version: 1\n", 2, "must be a YAML mapping"),
    MatrixCase("no-cell-left", "exclude rules that drop every CELL", _m("exclude: [{threads: [1, 2]}]\n"), 2,
               "the include/exclude rules leave no cell to run"),
    MatrixCase("include-nothing", "include rules that match no CELL", _m("include: [{engine: candle}]\n"), 2,
               "leave no cell to run"),
    MatrixCase("threads-above-host", "threads: [1, 1024] (more than this host's CPUs)",
               _replace("threads: [1, 2]", "threads: [1, 1024]"), 2, "asks for 1024 threads"),
    MatrixCase("cpus-reversed", "placement.cpus: '3-1' (reversed range)", _m("placement: {cpus: '3-1'}\n"), 2,
               "is reversed"),
    MatrixCase("cpus-absent", "placement.cpus: '4000' (a CPU this host lacks)", _m("placement: {cpus: '0,4000'}\n"),
               2, "that this host does not offer"),
    MatrixCase("cpus-beyond-linux", "placement.cpus: '0-99999' (beyond any Linux host)",
               _m("placement: {cpus: '0-99999'}\n"), 2, "exceeds the largest CPU id"),
    MatrixCase("too-many-cells", "threads 1..200 x 60 workloads x 2 formats = 24000 CELLs", _replace(
        "threads: [1, 2]", "threads: [" + ", ".join(map(str, range(1, 201))) + "]").replace(
        b"workloads:\n", b"workloads:\n" + b"".join(f"  - {{name: w{i}, prompt: x, gen_tokens: 8}}\n".encode()
                                                    for i in range(60))), 2, "the limit is 10000"),
    MatrixCase("too-many-engines", "300 engine entries", _replace(
        "engines:\n", "engines:\n" + "".join(f"  - {{name: llama.cpp, options: {{k{i}: 1}}}}\n" for i in range(300))),
               2, "is too long"),
    MatrixCase("token-repetitions", "repetitions 1000 x gen_tokens 1000 (a RESULT of ~60 MB)", _replace(
        "tinystories-15m", "tinyllama-1.1b").replace(b"gen_tokens: 8", b"gen_tokens: 1000") + b"repetitions: 1000\n",
               2, "the limit is 250000"),
    MatrixCase("rule-matches-nothing", "exclude: [{format: gguf-q5_k}] (a format not in the MATRIX)",
               _m("exclude: [{format: gguf-q5_k}]\n"), 0, "warning: m.yaml:13: exclude[0].format value 'gguf-q5_k' "
                                                             "matches no format"),
]


def matrix_outcome(case: MatrixCase, folder: Path) -> tuple[int, str]:
    """Run `orchestrate validate` on the case in-process: (exit code, stderr)."""
    path = folder / "m.yaml"
    if case.make:
        case.make(path)
    else:
        path.write_bytes(case.content)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)  # messages name the file as given: m.yaml
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main(["validate", "m.yaml"])
    finally:
        os.chdir(cwd)
    return code, err.getvalue()


# ---------------------------------------------------------------- RESULT files

JOB = {"cell_id": "c-000000000001", "threads": 1, "repetitions": 3,
       "workload": {"name": "w", "prompt": "x", "prompt_tokens": 4, "gen_tokens": 5}}


def valid_result() -> dict:
    return record()["result"]


def _write(document) -> Callable[[Path], None]:
    def make(out: Path) -> None:
        (out / "result.json").write_text(json.dumps(document))
    return make


def _raw(data: bytes) -> Callable[[Path], None]:
    return lambda out: (out / "result.json").write_bytes(data)


def _changed(change: Callable[[dict], None]) -> Callable[[Path], None]:
    result = valid_result()
    change(result)
    return _write(result)


def _rep(key: str, value) -> Callable[[dict], None]:
    return lambda r: r["repetitions"][0].__setitem__(key, value)


def _json_text(change: Callable[[str], str]) -> Callable[[Path], None]:
    return _raw(change(json.dumps(valid_result())).encode())


def _symlink_to_host(out: Path) -> None:
    (out / "result.json").symlink_to("/etc/passwd")


def _symlink_to_foreign_json(out: Path) -> None:
    foreign = out.parent / "foreign.json"
    foreign.write_text(json.dumps(valid_result()))  # a valid RESULT, but outside the output folder
    (out / "result.json").symlink_to(foreign)


def _hard_link(out: Path) -> None:
    foreign = out.parent / "foreign.json"
    foreign.write_text(json.dumps(valid_result()))
    os.link(foreign, out / "result.json")


def _device(out: Path) -> None:
    os.mknod(out / "result.json", 0o600 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null


@dataclass(frozen=True)
class ResultCase:
    """What a runner left in its output folder (after exiting 0 unless ``exit_code`` says otherwise)."""

    name: str
    what: str
    make: Callable[[Path], None]
    status: str
    words: str
    exit_code: int = 0
    log: str = ""
    root_only: bool = False


RESULT_CASES = [
    ResultCase("valid", "a valid RESULT (control)", _write(valid_result()), "ok", ""),
    ResultCase("symlink-host-file", "result.json -> /etc/passwd", _symlink_to_host, "invalid", "symbolic link"),
    ResultCase("symlink-foreign-json", "result.json -> a valid RESULT outside the output folder",
               _symlink_to_foreign_json, "invalid", "symbolic link"),
    ResultCase("hard-link", "result.json hard-linked to a file outside the folder", _hard_link, "invalid",
               "hard links"),
    ResultCase("fifo", "a FIFO named result.json (reading it would block)", lambda o: os.mkfifo(o / "result.json"),
               "invalid", "a FIFO"),
    ResultCase("directory", "a directory named result.json", lambda o: (o / "result.json").mkdir(), "invalid",
               "a directory"),
    ResultCase("device", "a character device named result.json", _device, "invalid", "a character device",
               root_only=True),
    ResultCase("missing", "no result.json at all", lambda o: None, "invalid", "wrote no result.json"),
    ResultCase("too-large", "a 40 MiB result.json", _raw(b" " * (40 << 20) + b"{}"), "invalid",
               "more than the limit of 33554432 bytes"),
    ResultCase("empty", "an empty result.json", _raw(b""), "invalid", "not readable JSON"),
    ResultCase("not-utf8", "bytes 0xff 0xfe (not UTF-8) inside engine.version", _raw(json.dumps(valid_result()).replace(
        '"v1"', '"v1XX"').encode().replace(b"XX", b"\xff\xfe")), "invalid", "not UTF-8: byte 0xff"),
    ResultCase("utf16", "UTF-16 encoded JSON", _raw(json.dumps(valid_result()).encode("utf-16")), "invalid",
               "not UTF-8"),
    ResultCase("deep-nesting", "JSON nested 100000 deep", _raw(b"[" * 100000 + b"]" * 100000), "invalid",
               "nested too deeply"),
    ResultCase("nested-extra", "`extra` nested 40 deep (parses, but past the limit)", _changed(
        lambda r: r.__setitem__("extra", json.loads('{"a":' * 40 + "1" + "}" * 40))), "invalid",
               "nested deeper than 32"),
    ResultCase("int-5000-digits", "a token id of 5000 digits (past the int-string limit)", _json_text(
        lambda t: t.replace('"token_ids": [0,', '"token_ids": [' + "9" * 5000 + ",", 1)), "invalid",
               "integer of 5000 digits"),
    ResultCase("int-25-digits", "a prompt_tokens of 25 digits", _json_text(
        lambda t: t.replace('"prompt_tokens": 4', '"prompt_tokens": ' + "9" * 25, 1)), "invalid",
               "integer of 25 digits"),
    ResultCase("nan", "decode_s: NaN", _json_text(lambda t: t.replace('"decode_s": 0.04', '"decode_s": NaN', 1)),
               "invalid", "NaN is not a JSON number"),
    ResultCase("infinity", "ttft_s: Infinity", _json_text(lambda t: t.replace('"ttft_s": 0.011', '"ttft_s": Infinity',
                                                                               1)), "invalid", "Infinity"),
    ResultCase("1e999", "load_time_s: 1e999 (overflows to infinity)", _json_text(
        lambda t: t.replace('"load_time_s": 0.2', '"load_time_s": 1e999')), "invalid", "out of range"),
    ResultCase("duplicate-key", "`cell_id` twice in the top object", _json_text(
        lambda t: t.replace('{"schema_version"', '{"cell_id": "c-ffffffffffff", "schema_version"', 1)), "invalid",
               "appears twice"),
    ResultCase("surrogate", "an unpaired surrogate escape in engine.version", _json_text(
        lambda t: t.replace('"version": "v1"', '"version": "v\\ud800"')), "invalid", "unpaired surrogate"),
    ResultCase("decode-1e-12", "decode_s 1e-12 s (6e13 tokens/s)", _changed(
        lambda r: [rep.update(decode_s=1e-12, inter_token_latencies_s=[2.5e-13] * 4) for rep in r["repetitions"]]),
               "invalid", "no CPU engine decodes that fast"),
    ResultCase("decode-not-itl-sum", "decode_s 0.04 s but the latencies sum to 0.4 s",
               _changed(_rep("inter_token_latencies_s", [0.1] * 4)), "invalid", "is not the sum"),
    ResultCase("ttft-before-prefill", "ttft_s shorter than prefill_s", _changed(_rep("ttft_s", 0.001)), "invalid",
               "shorter than prefill_s"),
    ResultCase("prefill-zero", "prefill_s 0 (prompt tokens/s infinite)", _changed(_rep("prefill_s", 0.0)), "invalid",
               "shorter than any forward pass"),
    ResultCase("time-beyond-a-week", "load_time_s of ten years", _changed(
        lambda r: r.__setitem__("load_time_s", 3.2e8)), "invalid", "longer than any cell may run"),
    ResultCase("version-huge", "engine.version of 100,000 characters", _changed(
        lambda r: r["engine"].__setitem__("version", "v" * 100_000)), "invalid", "a string of 100000 characters"),
    ResultCase("version-long", "engine.version of 1,000 characters", _changed(
        lambda r: r["engine"].__setitem__("version", "v" * 1000)), "invalid", "at most 200"),
    ResultCase("schema-long-message", "a 60,000-character string where a number belongs", _changed(
        _rep("decode_s", "x" * 60_000)), "invalid", "more characters]"),
    ResultCase("top-level-list", "a JSON list instead of an object", _raw(b"[1, 2, 3]"), "invalid",
               "fails schemas/result.schema.json"),
    ResultCase("huge-log-crash", "runner exits 3 after printing one 10 MB line", lambda o: None, "crashed",
               "more characters]", exit_code=3, log="x" * 10_000_000),
    ResultCase("huge-log-no-exit", "the container did not run; 10 MB of log", lambda o: None, "crashed",
               "more characters]", exit_code=-1, log="y" * 10_000_000),
]


def result_outcome(case: ResultCase, folder: Path) -> tuple[str, str | None]:
    """Judge the case's output folder: (status, reason)."""
    out = folder / "out"
    out.mkdir()
    case.make(out)
    exit_code = None if case.exit_code == -1 else case.exit_code
    status, reason, _ = judge(JOB, exit_code, False, False, case.log, out / "result.json")
    return status.value, reason


# ---------------------------------------------------------------- RUN folders for `orchestrate report`

IDS = ["c-000000000001", "c-000000000002", "c-000000000003"]


def write_run(folder: Path) -> Path:
    """A RUN folder with three ok CELL records, as `orchestrate run` leaves it."""
    run = {"schema_version": 1, "run_id": "20260101T000000Z-abcdef", "status": "finished",
           "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
           "orchestrator": {"version": "0.1.0", "git_commit": None},
           "matrix": {"path": "matrix.yaml", "text": "", "expanded": [{"cell_id": c} for c in IDS]},
           "plan_order": IDS, "images": {}, "models": {},
           "host": {"fingerprint": "f", "machine": "x86_64", "kernel": "6.8", "cpu": {"brand": "test", "logical_cpus": 4},
                    "frequency": {"ghz": 2.0, "source": "test"}, "cgroup_version": 2, "docker": {"version": "28.0"}}}
    run_dir = folder / "run"
    writing.write_json(run_dir / "run.json", run)
    for cell_id in IDS:
        writing.write_json(run_dir / "cells" / cell_id / "record.json", record(cell_id))
    return run_dir


def _replace_record(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(run_dir: Path) -> None:
        path = run_dir / "cells" / IDS[1] / "record.json"
        path.unlink()
        make(path)
    return apply


@dataclass(frozen=True)
class ReportCase:
    """A RUN folder damaged one way, fed to `orchestrate report`: exit code and words expected on stderr."""

    name: str
    what: str
    damage: Callable[[Path], None]
    exit_code: int
    words: str


REPORT_CASES = [
    ReportCase("record-corrupt", "one record.json cut in half", _replace_record(
        lambda p: p.write_text(json.dumps(record(IDS[1]))[:100])), 5, "1 CELL record(s) could not be read"),
    ReportCase("record-directory", "one record.json is a directory", _replace_record(lambda p: p.mkdir()), 5,
               "is a directory"),
    ReportCase("record-symlink", "one record.json is a symlink to /etc/passwd",
               _replace_record(lambda p: p.symlink_to("/etc/passwd")), 5, "symbolic link"),
    ReportCase("record-not-utf8", "one record.json holds a byte that is not UTF-8", _replace_record(
        lambda p: p.write_bytes(json.dumps(record(IDS[1])).replace("v1", "v\udcff", 1).encode("utf-8", "surrogateescape"))),
               5, "not UTF-8"),
    ReportCase("record-nan", "one record.json holds NaN", _replace_record(
        lambda p: p.write_text(json.dumps(record(IDS[1])).replace('"decode_s": 0.04', '"decode_s": NaN', 1))), 5,
               "NaN is not a JSON number"),
    ReportCase("record-fifo", "one record.json is a FIFO", _replace_record(lambda p: os.mkfifo(p)), 5, "a FIFO"),
    ReportCase("run-json-fifo", "run.json is a FIFO", lambda d: ((d / "run.json").unlink(), os.mkfifo(d / "run.json")),
               5, "a FIFO"),
    ReportCase("run-json-missing", "the folder has no run.json", lambda d: (d / "run.json").unlink(), 5,
               "no run.json"),
]


def report_outcome(case: ReportCase, folder: Path) -> tuple[int, str, str]:
    """Run `orchestrate report` on the damaged RUN folder in-process: (exit code, stdout, stderr)."""
    run_dir = write_run(folder)
    case.damage(run_dir)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(["report", str(run_dir)])
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- the table in docs/hostile-inputs.md

def _cell(text: str) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= 220 else text[:220] + " ..."
    return text.replace("|", "\\|")


def _first_problem(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("error:") or len(lines) == 1]
    return useful[0] if useful else ""


def main() -> None:
    """Print the Matrices and Result files sections of docs/hostile-inputs.md from observed outcomes."""
    print("## Matrices\n")
    print("| # | case | input | observed exit | observed message (first line) |\n| --- | --- | --- | --- | --- |")
    for i, case in enumerate(MATRIX_CASES, 1):
        with tempfile.TemporaryDirectory() as tmp:
            code, err = matrix_outcome(case, Path(tmp))
        print(f"| M{i} | `{case.name}` | {_cell(case.what)} | {code} | {_cell(_first_problem(err))} |")
    print("\n## Result files\n")
    print("| # | case | what the runner left | observed status | observed reason |\n| --- | --- | --- | --- | --- |")
    for i, case in enumerate(RESULT_CASES, 1):
        if case.root_only and os.geteuid() != 0:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            status, reason = result_outcome(case, Path(tmp))
        print(f"| R{i} | `{case.name}` | {_cell(case.what)} | {status} | {_cell(reason or '-')} |")
    print("\n### `orchestrate report` on damaged RUN folders\n")
    print("| # | case | damage | observed exit | observed stderr (last line) | rows in the TABLE |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for i, case in enumerate(REPORT_CASES, 1):
        with tempfile.TemporaryDirectory() as tmp:
            code, out, err = report_outcome(case, Path(tmp))
        last = [line.strip() for line in err.splitlines() if line.strip()][-1:] or [""]
        rows = out.count("\n| llama.cpp ")
        print(f"| P{i} | `{case.name}` | {_cell(case.what)} | {code} | {_cell(last[0])} | {rows} |")


if __name__ == "__main__":
    sys.exit(main())
