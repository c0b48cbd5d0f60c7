"""The CI context a RUN was made in (GitHub Actions), read from the environment for run.json."""

from __future__ import annotations

from typing import Mapping

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


def context(environ: Mapping[str, str]) -> dict | None:
    """The CI facts for run.json, or None outside CI; unset variables are null (pure)."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return {"provider": "github-actions",
                **{key: environ.get(variable) or None for key, variable in GITHUB_VARIABLES.items()}}
    if environ.get("CI"):
        return {"provider": "unknown", **{key: None for key in GITHUB_VARIABLES}}
    return None
