"""The GitHub Actions workflows: actionlint and zizmor (offline) find nothing, and the rules they do not check."""

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
# The first major of each action that runs on Node 24.
NODE24_MAJORS = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 5,
                 "actions/download-artifact": 6, "actions/cache": 5}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$")


def tool(name: str) -> str:
    """The linter installed with the test extra (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None and name == "zizmor" and platform.machine() != "x86_64":
        pytest.skip("zizmor has no PyPI wheel for this architecture (see pyproject.toml)")
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def test_both_workflows_exist():
    assert [p.name for p in FILES] == ["benchmark.yml", "ci.yml"]


def test_actionlint_finds_nothing():
    done = subprocess.run([tool("actionlint"), "-no-color", *map(str, FILES)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_offline_finds_nothing():
    done = subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_sha_on_a_node24_major(path):
    uses = [m.groups() for m in map(USES.match, path.read_text().splitlines()) if m]
    assert uses
    for action, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action}@{ref} is not pinned by a full commit SHA"
        assert comment and re.fullmatch(r"v\d+(\.\d+)*", comment), f"{action}@{ref} has no version comment"
        base = "/".join(action.split("/")[:2])
        assert int(comment[1:].split(".")[0]) >= NODE24_MAJORS[base], f"{action} {comment} runs on an old Node"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_least_privilege_and_no_interpolation_into_shell(path):
    text = path.read_text()
    workflow = yaml.safe_load(text)
    assert "pull_request_target" not in text
    assert workflow["permissions"] == {"contents": "read"}
    assert "group" in workflow["concurrency"]
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"job {name} has no timeout"
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"job {name}: an expression is interpolated into run:"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_benchmark_workflow_shape():
    workflow = yaml.safe_load((WORKFLOWS / "benchmark.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "labeled" in triggers["pull_request"]["types"]
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"matrix", "shards"} and triggers["schedule"]
    assert "'benchmark'" in workflow["jobs"]["plan"]["if"]
    run = workflow["jobs"]["run"]
    assert run["strategy"]["fail-fast"] is False
    assert run["strategy"]["matrix"]["runner"] == ["ubuntu-24.04", "ubuntu-24.04-arm"]
    assert "--github-matrix" in workflow["jobs"]["plan"]["steps"][-1]["run"]
    uploads = [s for s in run["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and all(s["if"] == "always()" for s in uploads)
    assert any("--require-measured" in s.get("run", "") for s in run["steps"])
    merge = workflow["jobs"]["merge"]
    assert "always()" in merge["if"] and set(merge["needs"]) == {"plan", "run"}
    merge_step = next(s for s in merge["steps"] if "orchestrate merge" in s.get("run", ""))
    assert "GITHUB_STEP_SUMMARY" in merge_step["run"]
