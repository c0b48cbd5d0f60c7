"""The CI context a RUN was made in (GitHub Actions), read from the environment for run.json, and the runner
label sets a benchmark workflow spreads its shards over."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from orchestrator.errors import UsageError

# run.json key -> the variable GitHub Actions sets on every runner, hosted or self-hosted.
GITHUB_VARIABLES = {
    "runner_name": "RUNNER_NAME",
    "runner_os": "RUNNER_OS",
    "runner_arch": "RUNNER_ARCH",
    "runner_environment": "RUNNER_ENVIRONMENT",  # github-hosted or self-hosted
    "image_os": "ImageOS",
    "image_version": "ImageVersion",
    "repository": "GITHUB_REPOSITORY",
    "workflow": "GITHUB_WORKFLOW",
    "job": "GITHUB_JOB",
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "event": "GITHUB_EVENT_NAME",
    "ref": "GITHUB_REF",
    "sha": "GITHUB_SHA",
}
# GitHub sets no variable with the labels a job asked for (runs-on): the benchmark workflow passes them in this one.
LABELS_VARIABLE = "ORCHESTRATE_RUNNER_LABELS"
# A matrix generates at most 256 jobs per workflow run (GitHub Actions' documented limit).
MAX_MATRIX_JOBS = 256
# Labels name artifacts (run-<labels>-shard-...): no character an artifact name may not hold, no space, no comma.
LABEL = re.compile(r'[^\s",:<>|*?\\/]+')


def context(environ: Mapping[str, str]) -> dict | None:
    """The CI facts for run.json, or None outside CI; unset variables are null (pure)."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return {"provider": "github-actions",
                **{key: environ.get(variable) or None for key, variable in GITHUB_VARIABLES.items()},
                "runner_labels": runner_labels(environ.get(LABELS_VARIABLE))}
    if environ.get("CI"):
        return {"provider": "unknown", **{key: None for key in GITHUB_VARIABLES}, "runner_labels": None}
    return None


def runner_labels(text: str | None) -> list[str] | None:
    """The labels of ORCHESTRATE_RUNNER_LABELS (a JSON list, or one label), None when unset or unreadable."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = text.strip()
    labels = [value] if isinstance(value, str) else value
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        return None
    return labels


def runner_sets(text: str) -> list[dict]:
    """The runner label sets of a JSON list, each a label or a list of labels, as {"labels": [...], "name": ...}.

    ``name`` (the labels joined by '-') names the set's artifacts and jobs, so two sets must not share it.
    """
    where = "--runners"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON ({exc}); give a list such as "
                         '\'["ubuntu-24.04", ["self-hosted", "linux", "x64", "epyc-9654"]]\'') from None
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: give a non-empty JSON list of runner label sets, not {text!r}")
    sets, names = [], {}
    for number, item in enumerate(value, 1):
        labels = [item] if isinstance(item, str) else item
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise UsageError(f"{where}: label set {number} must be a label or a non-empty list of labels, "
                             f"not {json.dumps(item)}")
        bad = [x for x in labels if not LABEL.fullmatch(x)]
        if bad:
            raise UsageError(f"{where}: label set {number} has a label with a space or one of \",:<>|*?\\/ in it "
                             f"(or an empty one): {json.dumps(bad)}")
        name = "-".join(labels)
        if name.lower() in names:  # labels are case-insensitive on GitHub
            raise UsageError(f"{where}: label sets {names[name.lower()]} and {number} both give the name {name!r}")
        names[name.lower()] = number
        sets.append({"labels": labels, "name": name})
    return sets


def check_job_count(runner_count: int, shard_count: int) -> None:
    """Refuse a matrix of runner label sets x shards larger than GitHub Actions runs."""
    if runner_count * shard_count > MAX_MATRIX_JOBS:
        raise UsageError(f"{runner_count} runner label set(s) x {shard_count} shards is "
                         f"{runner_count * shard_count} jobs; a GitHub Actions matrix runs at most {MAX_MATRIX_JOBS}")
