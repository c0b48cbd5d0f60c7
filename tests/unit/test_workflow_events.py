"""The benchmark workflow's label events and concurrency, simulated per GitHub's documented semantics.

tests/unit/ghruns.py queues a run for each event, evaluates the workflow's own concurrency group and
job conditions with the expression evaluator in tests/unit/ghexpr.py, and cancels, holds or starts runs
as GitHub documents. The workflow is read from .github/workflows/benchmark.yml, so these tests follow it.
"""

import copy
from pathlib import Path

import pytest
import yaml

from tests.unit.ghexpr import Evaluator, parse, split_template
from tests.unit.ghruns import Actions, PullRequest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BENCHMARK = yaml.safe_load((WORKFLOWS / "benchmark.yml").read_text())
ALL_JOBS = {"plan": "run", "build": "run", "run": "run", "merge": "run"}
NO_JOBS = {"plan": "skipped", "build": "skipped", "run": "skipped", "merge": "skipped"}
# The workflow-level concurrency before issue 26: one group per pull request for every event.
OLD_CONCURRENCY = {"group": "benchmark-${{ github.event.pull_request.number || github.ref }}",
                   "cancel-in-progress": True}


def actions(workflow=BENCHMARK, **kwargs) -> Actions:
    return Actions(copy.deepcopy(workflow), **kwargs)


def test_adding_an_unrelated_label_does_not_cancel_a_running_benchmark():
    gh, pr = actions(), PullRequest(7)
    benchmark = gh.pull_request(pr, pr.labeled("benchmark"))
    assert benchmark.state == "in_progress" and benchmark.jobs == ALL_JOBS
    other = gh.pull_request(pr, pr.labeled("documentation"))
    assert other.jobs == NO_JOBS and other.state == "completed"
    assert other.group != benchmark.group
    assert benchmark.state == "in_progress"  # still running
    gh.finish(benchmark)
    assert benchmark.state == "completed"


def test_with_the_old_concurrency_group_the_same_label_cancels_the_benchmark():
    """The defect of issue 26, shown by the same simulation: the test above can fail."""
    workflow = {**copy.deepcopy(BENCHMARK), "concurrency": OLD_CONCURRENCY}
    gh, pr = actions(workflow), PullRequest(7)
    benchmark = gh.pull_request(pr, pr.labeled("benchmark"))
    other = gh.pull_request(pr, pr.labeled("documentation"))
    assert other.jobs == NO_JOBS
    assert benchmark.state == "cancelled"


def test_a_sequence_of_events_on_one_pull_request():
    """labeled benchmark, labeled/unlabeled others, pushes, reopen, unlabeled benchmark; then manual runs."""
    gh, pr = actions(), PullRequest(12, ["bug"])
    seen = []

    def event(what, run):
        seen.append((what, run))
        return run

    first = event("labeled benchmark", gh.pull_request(pr, pr.labeled("benchmark")))
    event("labeled documentation", gh.pull_request(pr, pr.labeled("documentation")))
    event("unlabeled bug", gh.pull_request(pr, pr.unlabeled("bug")))
    assert first.state == "in_progress"
    second = event("synchronize (push)", gh.pull_request(pr, pr.synchronize()))
    assert first.state == "cancelled" and second.state == "in_progress"  # a newer commit replaces the benchmark
    third = event("reopened", gh.pull_request(pr, pr.reopened()))
    assert second.state == "cancelled" and third.state == "in_progress"
    stop = event("unlabeled benchmark", gh.pull_request(pr, pr.unlabeled("benchmark")))
    assert third.state == "cancelled"  # removing the label stops the benchmark
    assert stop.jobs == NO_JOBS and stop.state == "completed"
    quiet = event("synchronize without the label", gh.pull_request(pr, pr.synchronize()))
    assert quiet.jobs == NO_JOBS
    manual = event("workflow_dispatch", gh.workflow_dispatch({"matrix": "matrix.yaml"}))
    weekly = event("schedule", gh.schedule())
    assert manual.state == weekly.state == "in_progress"

    table = [(what, run.jobs["plan"] == "run", run.state) for what, run in seen]
    assert table == [
        ("labeled benchmark", True, "cancelled"),
        ("labeled documentation", False, "completed"),
        ("unlabeled bug", False, "completed"),
        ("synchronize (push)", True, "cancelled"),
        ("reopened", True, "cancelled"),
        ("unlabeled benchmark", False, "completed"),
        ("synchronize without the label", False, "completed"),
        ("workflow_dispatch", True, "in_progress"),
        ("schedule", True, "in_progress"),
    ]


def test_other_label_events_never_cancel_and_are_never_cancelled():
    gh, pr = actions(), PullRequest(3)
    benchmark = gh.pull_request(pr, pr.labeled("benchmark"))
    others = [gh.pull_request(pr, pr.labeled(name)) for name in ("a", "b", "c")]
    others.append(gh.pull_request(pr, pr.unlabeled("b")))
    assert len({run.group for run in others}) == 4  # each its own group
    assert benchmark.state == "in_progress"
    assert all(run.jobs == NO_JOBS and run.state == "completed" for run in others)


def test_pull_requests_do_not_cancel_each_other():
    gh, one, two = actions(), PullRequest(1), PullRequest(2)
    first = gh.pull_request(one, one.labeled("benchmark"))
    second = gh.pull_request(two, two.labeled("benchmark"))
    gh.pull_request(two, two.synchronize())
    assert first.state == "in_progress" and second.state == "cancelled"


def test_events_on_a_pull_request_without_the_label_skip_every_job():
    gh, pr = actions(), PullRequest(4)
    assert gh.pull_request(pr, pr.synchronize()).jobs == NO_JOBS
    assert gh.pull_request(pr, pr.reopened()).jobs == NO_JOBS
    assert gh.pull_request(pr, pr.labeled("enhancement")).jobs == NO_JOBS
    assert gh.pull_request(pr, pr.payload("opened")) is None  # `opened` is not among the types


def test_manual_runs_are_never_cancelled_by_later_runs():
    gh = actions()
    weekly = gh.schedule()
    runs = [gh.workflow_dispatch({"matrix": m}) for m in ("matrix.yaml", "matrices/scaling-llamacpp.yaml")]
    assert [r.state for r in [weekly, *runs]] == ["in_progress"] * 3
    assert len({r.group for r in runs}) == 2


def test_the_next_scheduled_run_replaces_one_still_running():
    gh = actions()
    last_week, this_week = gh.schedule(), gh.schedule()
    assert last_week.state == "cancelled" and this_week.state == "in_progress"


def test_merge_runs_after_failed_shards_but_not_after_a_cancel():
    merge = BENCHMARK["jobs"]["merge"]
    from tests.unit.ghexpr import Status

    needs = {"plan": {"result": "success"}, "run": {"result": "failure"}}
    assert Evaluator({"needs": needs}, Status(["success", "failure"])).condition(merge["if"])
    assert not Evaluator({"needs": needs}, Status(["success", "failure"], cancelled=True)).condition(merge["if"])
    run = BENCHMARK["jobs"]["run"]  # a failed build job (arm64 IMAGEs) still lets every shard run
    needs = {"plan": {"result": "success"}, "build": {"result": "failure"}}
    assert Evaluator({"needs": needs}, Status(["success", "failure"])).condition(run["if"])


def test_ci_cancels_superseded_runs_except_on_the_default_branch():
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    gh = actions(ci)
    main = [gh.push("main"), gh.push("main"), gh.push("main")]
    assert [r.state for r in main] == ["in_progress"] * 3  # every commit on main keeps its result
    feature = [gh.push("feature"), gh.push("feature")]
    assert [r.state for r in feature] == ["cancelled", "in_progress"]
    pr = PullRequest(9)
    first, second = gh.pull_request(pr, pr.synchronize()), gh.pull_request(pr, pr.synchronize())
    assert (first.state, second.state) == ("cancelled", "in_progress")
    assert gh.pull_request(pr, pr.labeled("benchmark")) is None  # labels do not start CI


# The simulator itself, on a made-up workflow: GitHub's documented queueing without cancel-in-progress.

QUEUEING = {"name": "q", "on": {"workflow_dispatch": {}}, "jobs": {"a": {"runs-on": "x", "steps": []}},
            "concurrency": {"group": "${{ github.ref }}-Deploy", "cancel-in-progress": False}}


def test_simulator_keeps_one_run_in_progress_and_one_pending():
    gh = actions(QUEUEING)
    first, second = gh.workflow_dispatch(), gh.workflow_dispatch()
    assert (first.state, second.state) == ("in_progress", "pending")
    third = gh.workflow_dispatch()
    assert (second.state, third.state) == ("cancelled", "pending")  # the newer pending run takes its place
    gh.finish(first)
    assert third.state == "in_progress"


def test_simulator_group_names_ignore_case():
    workflow = copy.deepcopy(QUEUEING)
    gh = actions(workflow)
    first = gh.workflow_dispatch()
    workflow["concurrency"]["group"] = "${{ github.ref }}-DEPLOY"
    assert gh.workflow_dispatch().state == "pending" and first.state == "in_progress"


def test_simulator_honours_pull_request_types():
    workflow = {**copy.deepcopy(QUEUEING), "on": {"pull_request": None}}
    gh, pr = actions(workflow), PullRequest(5)
    assert gh.pull_request(pr, pr.labeled("x")) is None  # labeled is not a default type
    assert gh.pull_request(pr, pr.synchronize()) is not None


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_the_evaluator_reads_every_expression_of_the_workflows(path):
    """Every ${{ }} and every `if:` parses: the evaluator covers the syntax the workflows use."""
    def walk(node, key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, k)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, key)
        elif isinstance(node, str):
            if key == "if" and "${{" not in node:
                yield node
            elif "${{" in node:
                yield from (body for kind, body in split_template(node) if kind == "expr")

    found = list(walk(yaml.safe_load(path.read_text())))
    assert found
    for expression in found:
        parse(expression)
