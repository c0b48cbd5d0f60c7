"""RESULTs: judge what a CELL's container left behind, and read/write records atomically."""

from __future__ import annotations

import enum
import json
import os
import tempfile
from pathlib import Path

from orchestrator import schemas
from orchestrator.errors import ResultError


class CellStatus(enum.Enum):
    """How a CELL ended."""

    OK = "ok"
    OOM = "oom"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    INVALID = "invalid"


def write_json_atomic(path: Path, document) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def consistency_problems(job: dict, result: dict) -> list[str]:
    """What a schema-valid RESULT still gets wrong about its job (pure)."""
    problems = []
    workload = job["workload"]
    if result["cell_id"] != job["cell_id"]:
        problems.append(f"result is for cell {result['cell_id']}, not {job['cell_id']}")
    if len(result["repetitions"]) != job["repetitions"]:
        problems.append(f"{len(result['repetitions'])} repetitions reported, {job['repetitions']} asked for")
    threads = result["threads"]
    if threads["used"] != job["threads"]:
        problems.append(f"the engine ran with {threads['used']} threads ({threads['how']}), "
                        f"the cell asked for {job['threads']}")
    for rep in result["repetitions"]:
        where = f"repetition {rep['index']}"
        if rep["generated_tokens"] != workload["gen_tokens"] or len(rep["token_ids"]) != workload["gen_tokens"]:
            problems.append(f"{where}: {rep['generated_tokens']} tokens generated ({len(rep['token_ids'])} ids), "
                            f"{workload['gen_tokens']} asked for")
        if len(rep["inter_token_latencies_s"]) != rep["generated_tokens"] - 1:
            problems.append(f"{where}: {len(rep['inter_token_latencies_s'])} inter-token latencies for "
                            f"{rep['generated_tokens']} tokens (expected one fewer)")
        if workload["prompt_tokens"] and rep["prompt_tokens"] != workload["prompt_tokens"]:
            problems.append(f"{where}: prompt has {rep['prompt_tokens']} tokens, {workload['prompt_tokens']} asked for")
    return problems


def judge(job: dict, exit_code: int | None, oom_killed: bool, timed_out: bool, log_tail: str,
          result_path: Path) -> tuple[CellStatus, str | None, dict | None]:
    """The CELL's status, the reason when not ok, and its RESULT when valid (reads one file)."""
    last = " | ".join(line for line in log_tail.strip().splitlines()[-3:])
    if timed_out:
        return CellStatus.TIMEOUT, "the cell ran past its timeout and was killed", None
    if oom_killed:
        return CellStatus.OOM, "killed by the kernel's OOM killer at the cell's memory limit", None
    if exit_code is None:
        return CellStatus.CRASHED, log_tail.strip() or "the container did not run", None
    if exit_code != 0:
        return CellStatus.CRASHED, f"the runner exited with status {exit_code}" + (f": {last}" if last else ""), None
    if not result_path.is_file():
        return CellStatus.INVALID, "the runner exited 0 but wrote no result.json", None
    try:
        result = json.loads(result_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return CellStatus.INVALID, f"result.json is not readable JSON: {exc}", None
    found = schemas.problems("result", result)
    if found:
        detail = "; ".join(f"{p or '(top level)'}: {m}" for p, m in found[:5])
        return CellStatus.INVALID, f"result.json fails schemas/result.schema.json: {detail}", None
    problems = consistency_problems(job, result)
    if problems:
        return CellStatus.INVALID, "; ".join(problems), result
    return CellStatus.OK, None, result


def write_record(path: Path, record: dict) -> None:
    """Validate a CELL record against schemas/record.schema.json and write it atomically."""
    schemas.check("record", record, f"record for cell {record.get('cell_id')}")
    write_json_atomic(path, record)


def read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """run.json and every CELL record of a RUN folder, each validated when read."""
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise ResultError(f"{run_dir} is not a RUN folder: it has no run.json")
    try:
        run = json.loads(run_file.read_text())
    except json.JSONDecodeError as exc:
        raise ResultError(f"{run_file} is not valid JSON: {exc}") from None
    schemas.check("run", run, str(run_file))
    records = []
    for cell_id in run["plan_order"]:
        path = run_dir / "cells" / cell_id / "record.json"
        if not path.is_file():
            continue  # the RUN stopped before this cell
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ResultError(f"{path} is not valid JSON: {exc}") from None
        schemas.check("record", record, str(path))
        records.append(record)
    return run, records
