"""Read the CELL's job and check it against the contract: the job schema and the ENGINE's options."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from runnerkit import schema

HERE = Path(__file__).resolve().parent
DEFAULT_JOB = "/job/job.json"
GENERATE, PERPLEXITY = "generate", "perplexity"


class JobError(Exception):
    """The job cannot be run as given: the runner exits 1 without a result."""


@dataclass(frozen=True)
class Job:
    """A checked job (schemas/cell.schema.json).

    kind is the workload's kind: "generate" (the default) uses prompt, prompt_tokens and
    gen_tokens; "perplexity" uses text, ids_path, ids_sha256, context and stride (and
    prompt, prompt_tokens and gen_tokens are None).
    """

    cell_id: str
    engine: str
    options: dict
    model_id: str
    model_format: str
    model_path: str
    tokenizer: str | None
    threads: int
    prompt: str | None
    prompt_tokens: int | None
    gen_tokens: int | None
    warmup: int
    repetitions: int
    output_dir: str
    kind: str = GENERATE
    text: str | None = None
    ids_path: str | None = None
    ids_sha256: str | None = None
    context: int | None = None
    stride: int | None = None

    @property
    def perplexity(self) -> bool:
        return self.kind == PERPLEXITY


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
    kind = workload.get("kind", GENERATE)
    common = (document["cell_id"], document["engine"]["name"], dict(document["engine"]["options"]),
              model["id"], model["format"], model["path"], model.get("tokenizer"), document["threads"])
    rest = (document["warmup"], document["repetitions"], document["output_dir"])
    if kind == PERPLEXITY:
        if workload["stride"] >= workload["context"]:
            raise JobError(f"job: workload.stride ({workload['stride']}) is not below workload.context "
                           f"({workload['context']}): every id from the second on must be scored")
        return Job(*common, None, None, None, *rest, kind=kind, text=workload["text"],
                   ids_path=workload["ids_path"], ids_sha256=workload["ids_sha256"],
                   context=workload["context"], stride=workload["stride"])
    return Job(*common, workload["prompt"], workload["prompt_tokens"], workload["gen_tokens"], *rest)


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


def options(job: Job) -> dict:
    """Every option the ENGINE declares, with the job's value or its declared default."""
    return {name: option(job, name) for name in _schema("options.schema.json").get("properties", {})}
