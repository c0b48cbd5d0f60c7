"""The runner's entry point: one exit code for every failure, the reason on stderr, never a partial result."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable

from runnerkit import job as jobs
from runnerkit import result as results

_START = time.monotonic()
_NAME = ["runner"]


def log(message: str) -> None:
    """A timestamped line on stderr (the CELL's runner.log)."""
    print(f"[{_NAME[0]} {time.monotonic() - _START:7.3f}s] {message}", file=sys.stderr, flush=True)


def run(name: str, body: Callable[[jobs.Job], dict], load: Callable[[], jobs.Job] = jobs.load,
        kinds: tuple[str, ...] = (jobs.GENERATE,)) -> int:
    """Load and check the job, call ``body(job)`` for the RESULT, write it; 0, or 1 on any error.

    ``kinds``: the workload kinds the runner runs; a job of another kind is refused.
    """
    _NAME[0] = name
    try:
        job = load()
        if job.kind not in kinds:
            raise jobs.JobError(f"this runner does not run {job.kind!r} workloads (it runs: {', '.join(kinds)})")
        log(f"cell {job.cell_id}: {job.model_format} {job.model_path}, threads {job.threads}, "
            f"warmup {job.warmup}, repetitions {job.repetitions}")
        path = results.write(job.output_dir, body(job))
    except jobs.JobError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - any failure: reason on stderr, no result, exit 1
        traceback.print_exc(file=sys.stderr)
        print(f"{name}: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    log(f"wrote {path}")
    return 0
