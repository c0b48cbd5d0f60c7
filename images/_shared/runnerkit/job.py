"""Read the CELL's job and check it against the contract: the job schema and the ENGINE's options."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from runnerkit import schema

HERE = Path(__file__).resolve().parent
DEFAULT_JOB = "/job/job.json"


class JobError(Exception):
    """The job cannot be run as given: the runner exits 1 without a result."""


@dataclass(frozen=True)
class Job:
    """A checked job (schemas/cell.schema.json)."""

    cell_id: str
    engine: str
    options: dict
    model_id: str
    model_format: str
    model_path: str
    tokenizer: str | None
    threads: int
    prompt: str
    prompt_tokens: int | None
    gen_tokens: int
    warmup: int
    repetitions: int
    output_dir: str


def _schema(name: str) -> dict:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def check(document) -> Job:
    """The job as a Job, or JobError naming every problem (schema first, then the options)."""
    found = schema.problems(_schema("cell.schema.json"), document)
    if not found:
        found = schema.problems(_schema("options.schema.json"), document["engine"]["options"], "engine.options")
    if found:
        raise JobError("job: " + "; ".join(found[:5]))
    model, workload = document["model"], document["workload"]
    return Job(document["cell_id"], document["engine"]["name"], dict(document["engine"]["options"]),
               model["id"], model["format"], model["path"], model.get("tokenizer"), document["threads"],
               workload["prompt"], workload["prompt_tokens"], workload["gen_tokens"], document["warmup"],
               document["repetitions"], document["output_dir"])


def load(path: str | None = None) -> Job:
    """Read the job from ``path``, else $ORCHESTRATE_JOB, else /job/job.json, and check it."""
    path = path or os.environ.get("ORCHESTRATE_JOB") or DEFAULT_JOB
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JobError(f"cannot read job {path}: {exc}") from exc
    return check(document)


def option(job: Job, name: str):
    """An engine option's value, or its declared default."""
    if name in job.options:
        return job.options[name]
    return _schema("options.schema.json")["properties"][name].get("default")
