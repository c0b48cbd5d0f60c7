"""Assemble result.json (schemas/result.schema.json) and write it atomically (contract step 7)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from runnerkit.job import Job
from runnerkit.proc import CpuWindow


def threads(job: Job, window: CpuWindow, engine_reported: int | None, how: str) -> dict:
    """The raw thread figures: per-thread CPU over the window and the engine's own count."""
    return {"requested": job.threads, "per_thread": window.per_thread, "engine_reported": engine_reported,
            "how": f"per_thread: CPU time of every thread of the engine's process tree over the timed "
                   f"repetitions ({window.source}); engine_reported: {how}"}


def _common(job: Job, engine: dict, threads_figures: dict, load_time_s: float, peak_rss_bytes: int | None,
            measurement_boundary: str) -> tuple[dict, dict]:
    unmeasured = {} if peak_rss_bytes is not None else {"peak_rss_bytes": "VmHWM not readable from /proc"}
    return {"schema_version": 1, "cell_id": job.cell_id, "engine": engine,
            "measurement_boundary": measurement_boundary, "threads": threads_figures,
            "load_time_s": load_time_s, "peak_rss_bytes": peak_rss_bytes}, unmeasured


def document(job: Job, engine: dict, threads_figures: dict, load_time_s: float, peak_rss_bytes: int | None,
             prompt_ids: list[int], repetitions: list[dict], extra: dict | None = None,
             measurement_boundary: str = "in-process") -> dict:
    """The RESULT; a peak that could not be read is null with its reason in 'unmeasured'."""
    head, unmeasured = _common(job, engine, threads_figures, load_time_s, peak_rss_bytes, measurement_boundary)
    return {**head, "prompt_token_ids": prompt_ids, "repetitions": repetitions, "extra": extra or {},
            "unmeasured": unmeasured}


def perplexity_document(job: Job, engine: dict, threads_figures: dict, load_time_s: float,
                        peak_rss_bytes: int | None, perplexity: dict, repetitions: list[dict],
                        extra: dict | None = None, measurement_boundary: str = "in-process") -> dict:
    """A perplexity CELL's RESULT: the ``perplexity`` object (runnerkit.perplexity.result_fields) and
    the evaluation repetitions instead of prompt_token_ids and generation repetitions."""
    head, unmeasured = _common(job, engine, threads_figures, load_time_s, peak_rss_bytes, measurement_boundary)
    return {**head, "perplexity": perplexity, "repetitions": repetitions, "extra": extra or {},
            "unmeasured": unmeasured}


def write(output_dir: str, result: dict) -> Path:
    """<output_dir>/result.json through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=".result.", suffix=".tmp", dir=output_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        final = Path(output_dir) / "result.json"
        os.replace(tmp, final)
        return final
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_build_info() -> dict | None:
    """The image's build record ($ORCHESTRATE_BUILD_INFO, default /opt/engine/build.json)."""
    path = Path(os.environ.get("ORCHESTRATE_BUILD_INFO", "/opt/engine/build.json"))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
