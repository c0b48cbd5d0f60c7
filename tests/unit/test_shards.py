"""Splitting a PLAN into stable shards, the GitHub Actions matrix, and the CI context in run.json."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import schemas
from orchestrator.errors import UsageError
from orchestrator.host import ci
from orchestrator.matrix import matrixfile
from orchestrator.plan import planner

ROOT = Path(__file__).resolve().parents[2]


def default_plan():
    return planner.expand(matrixfile.load(str(ROOT / "matrix.yaml")))


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_cell_lands_in_exactly_one_shard_and_shards_are_balanced(count):
    cells = default_plan()
    parts = planner.split(cells, count)
    assert len(parts) == count
    flat = [c.cell_id for part in parts for c in part]
    assert sorted(flat) == sorted(c.cell_id for c in cells) and len(set(flat)) == len(cells)
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    for index in range(1, count + 1):
        assert planner.select(cells, planner.Shard(index, count)) == parts[index - 1]


def test_default_matrix_two_shards_keep_engines_together():
    first, second = planner.split(default_plan(), 2)
    # Contiguous parts of PLAN order (engine-major): at most one engine is in both shards.
    assert len({c.engine for c in first} & {c.engine for c in second}) <= 1
    assert [c.engine for c in first][0] == "llama.cpp"


def test_plan_shards_json_is_the_same_in_fresh_interpreters_and_covers_each_cell_once():
    outputs = [subprocess.run([sys.executable, "-m", "orchestrator", "plan", "matrix.yaml", "--shards", "3", "--json"],
                              capture_output=True, text=True, check=True, cwd=ROOT,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert outputs[0] == outputs[1]
    found = json.loads(outputs[0])
    ids = [cell_id for shard in found["shards"] for cell_id in shard["cell_ids"]]
    assert [s["shard"] for s in found["shards"]] == ["1/3", "2/3", "3/3"]
    count = len(default_plan())
    assert found["cells"] == count and sorted(ids) == sorted(c.cell_id for c in default_plan())
    assert len(ids) == len(set(ids)) == count


def test_github_matrix_is_one_line_of_json():
    done = subprocess.run([sys.executable, "-m", "orchestrator", "plan", "matrix.yaml", "--shards", "2",
                           "--github-matrix"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout == '{"shard":["1/2","2/2"]}\n'


@pytest.mark.parametrize("text, shard", [("1/2", planner.Shard(1, 2)), ("3/3", planner.Shard(3, 3)),
                                         (" 2/4", planner.Shard(2, 4))])
def test_parse_shard(text, shard):
    assert planner.parse_shard(text) == shard and str(shard) == text.strip()


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2", "1/2/3"])
def test_bad_shards_are_usage_errors(text):
    with pytest.raises(UsageError, match="--shard"):
        planner.parse_shard(text)


def test_more_shards_than_cells_is_refused():
    count = len(default_plan())
    with pytest.raises(UsageError, match=f"only {count} cell"):
        planner.split(default_plan(), count + 1)
    with pytest.raises(UsageError):
        planner.split(default_plan(), 0)


def test_bad_shard_on_the_command_line_exits_2():
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "matrix.yaml", "--shard", "3/2"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "I must be between 1 and N" in done.stderr and "Traceback" not in done.stderr


GITHUB_ENV = {"GITHUB_ACTIONS": "true", "RUNNER_NAME": "GitHub Actions 12", "RUNNER_OS": "Linux",
              "RUNNER_ARCH": "ARM64", "GITHUB_RUN_ID": "123456789", "GITHUB_RUN_ATTEMPT": "1",
              "RUNNER_ENVIRONMENT": "github-hosted", "ImageOS": "ubuntu24"}


def test_ci_context_from_github_variables():
    found = ci.context(GITHUB_ENV)
    assert found["provider"] == "github-actions"
    assert (found["runner_name"], found["runner_os"], found["runner_arch"], found["run_id"]) == \
        ("GitHub Actions 12", "Linux", "ARM64", "123456789")
    assert found["workflow"] is None  # unset variables are null, not invented
    assert ci.context({}) is None
    assert ci.context({"CI": "true"})["provider"] == "unknown"


def test_ci_context_records_the_runner_labels_the_workflow_passes():
    labels = ["self-hosted", "linux", "arm64", "graviton3"]
    as_tojson = json.dumps(labels, indent=2)  # what ${{ toJSON(matrix.runner.labels) }} gives
    assert ci.context({**GITHUB_ENV, ci.LABELS_VARIABLE: as_tojson})["runner_labels"] == labels
    assert ci.context({**GITHUB_ENV, ci.LABELS_VARIABLE: "ubuntu-24.04"})["runner_labels"] == ["ubuntu-24.04"]
    assert ci.context(GITHUB_ENV)["runner_labels"] is None
    assert ci.runner_labels("[]") is None and ci.runner_labels("[1]") is None and ci.runner_labels("  ") is None


def test_runner_label_sets():
    found = ci.runner_sets('["ubuntu-24.04", ["self-hosted", "linux", "arm64", "graviton3"]]')
    assert found == [{"labels": ["ubuntu-24.04"], "name": "ubuntu-24.04"},
                     {"labels": ["self-hosted", "linux", "arm64", "graviton3"],
                      "name": "self-hosted-linux-arm64-graviton3"}]


@pytest.mark.parametrize("text, reason", [
    ("ubuntu-24.04", "not JSON"), ("[]", "non-empty JSON list"), ('{"a": 1}', "non-empty JSON list"),
    ("[[]]", "label set 1 must be"), ('["a", 3]', "label set 2 must be"), ('["a b"]', "has a label with a space"),
    ('["x/y"]', "has a label with"), ('[""]', "has a label with"), ('["A", "a"]', "label sets 1 and 2"),
    ('[["a", "b-c"], ["a-b", "c"]]', "label sets 1 and 2 both give the name"),
])
def test_bad_runner_label_sets_are_refused_with_the_reason(text, reason):
    with pytest.raises(UsageError, match=re.escape(reason)):
        ci.runner_sets(text)


def test_github_matrix_with_runners_on_the_command_line():
    runners = '["ubuntu-24.04", ["self-hosted", "linux", "x64", "epyc-9654"]]'
    done = subprocess.run([sys.executable, "-m", "orchestrator", "plan", "matrix.yaml", "--shards", "2",
                           "--github-matrix", "--runners", runners], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"runner": ci.runner_sets(runners), "shard": ["1/2", "2/2"]}
    bad = subprocess.run([sys.executable, "-m", "orchestrator", "plan", "matrix.yaml", "--runners", runners],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--runners goes with --github-matrix" in bad.stderr


def test_more_jobs_than_a_github_matrix_runs_are_refused():
    ci.check_job_count(2, 128)
    with pytest.raises(UsageError, match="at most 256"):
        ci.check_job_count(3, 86)


def run_document(**extra):
    return {"schema_version": 1, "run_id": "20260101T000000Z-abcdef", "status": "finished",
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": None,
            "orchestrator": {"version": "0", "git_commit": None}, "matrix": {"path": "m", "text": "", "expanded": []},
            "plan_order": [], "images": {}, "models": {},
            "host": {"fingerprint": "f", "frequency": {"ghz": None, "source": None, "reason": "not read in this test"},
                     "cgroup_version": 2, "docker": {}}, **extra}


def test_run_schema_takes_the_shard_and_ci_context():
    cells = default_plan()
    shard = planner.Shard(2, 2)
    good = run_document(shard=planner.shard_record(shard, cells, planner.select(cells, shard)), ci=ci.context(GITHUB_ENV))
    assert schemas.problems("run", good) == []
    labelled = ci.context({**GITHUB_ENV, ci.LABELS_VARIABLE: '["self-hosted", "x64"]'})
    assert schemas.problems("run", run_document(ci=labelled)) == []
    assert schemas.problems("run", run_document(ci={**labelled, "runner_labels": "x64"}))
    assert schemas.problems("run", run_document(shard=None, ci=None)) == []
    assert schemas.problems("run", run_document()) == []  # RUNs from before shards stay valid
    assert schemas.problems("run", run_document(shard={"index": 0, "count": 2, "cells": 1, "plan_cells": 2}))
