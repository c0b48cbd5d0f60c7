"""The GitHub Actions workflows: actionlint (with its shellcheck rule) and zizmor (offline) find nothing, and the
rules they do not check. Label events and concurrency are simulated in test_workflow_events.py."""

import json
import os
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
    how = " (off x86-64: apt-get install shellcheck, or `make test-deps` as root)" if name == "shellcheck" else ""
    assert found, f"{name} is not installed: pip install -e '.[test]'{how}"
    return found


def test_both_workflows_exist():
    assert [p.name for p in FILES] == ["benchmark.yml", "ci.yml"]


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """actionlint with shellcheck named by path: actionlint silently drops its shellcheck rule when the command it
    looks for is not found, so the test finds shellcheck itself and fails when it is missing."""
    return subprocess.run([tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), *map(str, paths)],
                          capture_output=True, text=True, cwd=cwd)


def test_actionlint_finds_nothing():
    done = actionlint(*FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_really_runs_shellcheck(tmp_path):
    """A canary: an unquoted variable in a run: script is a shellcheck finding (SC2086) through actionlint."""
    canary = tmp_path / ".github" / "workflows" / "canary.yml"
    canary.parent.mkdir(parents=True)
    canary.write_text("name: canary\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo $FOO\n")
    done = actionlint(canary, cwd=tmp_path)
    assert done.returncode == 1 and "SC2086" in done.stdout, done.stdout + done.stderr


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



def benchmark() -> dict:
    return yaml.safe_load((WORKFLOWS / "benchmark.yml").read_text())


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def step_named(job: dict, words: str) -> dict:
    return next(s for s in job["steps"] if s.get("name", "").startswith(words))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_condition_uses_always(path):
    """always() also runs when the run is cancelled (by a newer run of the group): !cancelled() is what is meant."""
    workflow = yaml.safe_load(path.read_text())
    conditions = [job.get("if", "") for job in workflow["jobs"].values()]
    conditions += [step.get("if", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert not [c for c in conditions if "always()" in str(c)]


def test_benchmark_workflow_shape():
    workflow = benchmark()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers["pull_request"]["types"]) == {"labeled", "unlabeled", "synchronize", "reopened"}
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"matrix", "shards", "runners"} and triggers["schedule"]
    jobs = workflow["jobs"]
    assert "'benchmark'" in jobs["plan"]["if"]
    assert "--github-matrix --runners" in step_named(jobs["plan"], "split the PLAN")["run"]
    assert jobs["build"]["needs"] == "plan" and set(jobs["run"]["needs"]) == {"plan", "build"}
    for name in ("build", "run"):
        assert jobs[name]["strategy"]["fail-fast"] is False
        assert jobs[name]["runs-on"] == "${{ matrix.runner.labels }}"
    assert jobs["run"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert jobs["build"]["strategy"]["matrix"]["runner"] == "${{ fromJSON(needs.plan.outputs.matrix).runner }}"
    assert any("--require-measured" in s.get("run", "") for s in jobs["run"]["steps"])
    merge = jobs["merge"]
    assert merge["if"] == jobs["run"]["if"] == "${{ !cancelled() && needs.plan.result == 'success' }}"
    assert set(merge["needs"]) == {"plan", "run"}


def test_uploads_and_cleanup_run_after_failures_but_not_after_a_cancel():
    workflow = benchmark()
    for name, job in workflow["jobs"].items():
        for step in steps_using(job, "actions/upload-artifact"):
            assert step["if"].startswith("${{ !cancelled()"), f"{name}: {step.get('name')}"
    assert step_named(workflow["jobs"]["run"], "hand the files back")["if"] == "${{ !cancelled() }}"


def test_caches_are_saved_after_a_failed_cell_with_the_restored_key():
    """actions/cache saves in its post step only when the job succeeds (post-if: success()): restore + save."""
    workflow = benchmark()
    restores = {}
    for name, job in workflow["jobs"].items():
        assert not steps_using(job, "actions/cache"), f"{name} uses actions/cache, which saves only on success"
        for step in steps_using(job, "actions/cache/restore"):
            restores[(name, step["id"])] = step["with"]["path"]
        for step in steps_using(job, "actions/cache/save"):
            assert "!cancelled()" in step["if"], f"{name}: {step.get('name')}"
            match = re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.cache-primary-key \}\}", step["with"]["key"])
            assert match and restores[(name, match.group(1))] == step["with"]["path"]
    build = workflow["jobs"]["build"]
    assert [s["with"]["path"] for s in steps_using(build, "actions/cache/save")] == [".cache/images", ".cache/models"]
    # The shards restore the model store the build job saved: the same key.
    run = workflow["jobs"]["run"]
    assert step_named(run, "restore the model store")["with"] == step_named(build, "restore the model store")["with"]
    assert not steps_using(run, "actions/cache/save")


def test_images_are_built_once_per_runner_label_set_and_loaded_by_the_shards():
    jobs = benchmark()["jobs"]
    build, run = jobs["build"], jobs["run"]
    assert "orchestrate prepare \"$MATRIX_FILE\" matrices/ci-smoke.yaml" in step_named(build, "build the IMAGEs")["run"]
    saved = step_named(build, "save the IMAGEs the CELLs run")["run"]
    assert "awk '$1 == \"image\"" in saved and "docker save" in saved
    [upload] = steps_using(build, "actions/upload-artifact")
    assert upload["with"]["name"] == "images-${{ matrix.runner.name }}"
    assert upload["with"]["retention-days"] == 1 and upload["with"]["compression-level"] == 0
    assert not upload["with"]["path"].startswith(".")  # upload-artifact leaves hidden files out by default
    [download] = steps_using(run, "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"] and download["continue-on-error"] is True
    assert "docker load --input image-transfer/images.tar.gz" in step_named(run, "load the IMAGEs")["run"]
    scripts = "\n".join(s.get("run", "") for s in run["steps"])
    assert "orchestrate build" not in scripts and "orchestrate prepare" not in scripts


def test_free_disk_space_only_on_hosted_runners():
    for name in ("build", "run"):
        step = step_named(benchmark()["jobs"][name], "free disk space")
        assert step["if"] == "runner.environment == 'github-hosted'" and "sudo rm -rf" in step["run"]


def runners_for(event: str, inputs: dict, variables: dict) -> list:
    from tests.unit.ghexpr import Evaluator

    step = step_named(benchmark()["jobs"]["plan"], "split the PLAN")
    value = Evaluator({"github": {"event_name": event}, "inputs": inputs, "vars": variables}).template(
        step["env"]["RUNNERS"].strip())
    return json.loads(value)


def test_runner_label_sets_come_from_the_input_then_the_variable_and_never_reach_pull_requests():
    hosted = ["ubuntu-24.04", "ubuntu-24.04-arm"]
    own = '[["self-hosted", "linux", "arm64", "graviton3"], ["self-hosted", "linux", "x64", "epyc-9654"]]'
    assert runners_for("workflow_dispatch", {"runners": ""}, {}) == hosted
    assert runners_for("workflow_dispatch", {"runners": own}, {}) == json.loads(own)
    assert runners_for("workflow_dispatch", {"runners": ""}, {"BENCHMARK_RUNNERS": own}) == json.loads(own)
    assert runners_for("schedule", {}, {"BENCHMARK_RUNNERS": own}) == json.loads(own)
    assert runners_for("pull_request", {}, {"BENCHMARK_RUNNERS": own}) == hosted  # a fork's code never gets there


def test_the_run_job_records_its_runner_labels():
    from orchestrator.host import ci
    from tests.unit.ghexpr import Evaluator

    run = benchmark()["jobs"]["run"]
    labels = ["self-hosted", "linux", "x64", "epyc-9654"]
    value = Evaluator({"matrix": {"runner": {"labels": labels}}}).template(run["env"][ci.LABELS_VARIABLE])
    assert ci.runner_labels(value) == labels


def test_the_default_matrix_is_valid_and_measures_ollama_and_smallmind():
    default = benchmark()[True]["workflow_dispatch"]["inputs"]["matrix"]["default"]
    assert f"'{default}'" in benchmark()["env"]["MATRIX_FILE"]
    done = subprocess.run([sys.executable, "-m", "orchestrator", "plan", default], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    engines = {line.split()[1] for line in done.stdout.splitlines()[:-1]}
    assert {"llama.cpp", "ollama", "smallmind"} <= engines


def summary_script() -> str:
    return step_named(benchmark()["jobs"]["merge"], "show the TABLE")["run"]


def write_summary(tmp_path: Path, table: str, url: str = "") -> str:
    (tmp_path / "merged" / "tables").mkdir(parents=True, exist_ok=True)
    (tmp_path / "merged" / "tables" / "cells.md").write_text(table, encoding="utf-8")
    summary = tmp_path / "summary.md"
    summary.write_text("")
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", summary_script()], cwd=tmp_path,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "ARTIFACT_URL": url},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return summary.read_text(encoding="utf-8")


def test_a_small_table_goes_to_the_summary_whole(tmp_path):
    table = "# Merged TABLE\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n"
    assert write_summary(tmp_path, table) == table


def test_a_table_over_one_mib_is_cut_at_a_line_end_with_a_link_to_the_artifact(tmp_path):
    """GitHub refuses a step summary over 1 MiB whole: what is written stays under it, rows are never cut."""
    row = "| c-0123456789ab | llama.cpp | smollm2-135m-instruct | gguf-q8_0 | 1 | p64-g64 | 912.3 | Ünïcödé |\n"
    table = "# Merged TABLE\n\n" + row * (3 * 2**20 // len(row.encode()))
    url = "https://github.com/owner/orchestrate/actions/runs/1/artifacts/2"
    written = write_summary(tmp_path, table, url)
    assert len(written.encode()) <= 2**20
    kept, note = written.split("\n\n**The TABLE is cut here**")
    assert table.startswith(kept) and kept.endswith(row)
    assert f"[`merged`]({url})" in note and f"{len(table.encode())} bytes" in note
    assert "`merged` of this run" in write_summary(tmp_path, table).split("cut here**")[1]
