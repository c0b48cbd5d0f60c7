"""The runs of one workflow as GitHub Actions queues, starts, skips and cancels them, for the workflow tests.

What is modelled, from GitHub's documentation ("Control the concurrency of workflows and jobs",
"Events that trigger workflows", "Using conditions to control job execution"):

- an event starts a run only if the workflow's `on:` takes it (for `pull_request`, an action listed in
  `types`, or opened/synchronize/reopened when `types` is absent);
- a run's workflow-level concurrency group and cancel-in-progress are evaluated from the event's
  contexts (github, inputs, vars) when the run is queued, before any job's `if:`; group names ignore case;
- a new run in a group cancels the group's pending run; with cancel-in-progress it also cancels the
  group's run in progress; otherwise it waits (pending) while one is in progress, and starts when that
  one ends;
- when a run starts, each job's `if:` is evaluated in `needs` order with success() by default: a job
  whose needed job was skipped is skipped unless its `if:` says otherwise (always(), !cancelled());
  a job that runs is taken to succeed. A run whose jobs are all skipped ends at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tests.unit.ghexpr import Evaluator, Status

DEFAULT_PULL_REQUEST_TYPES = ("opened", "synchronize", "reopened")


@dataclass
class Run:
    """One workflow run: its event, its concurrency group, which jobs run, and its state."""

    run_id: int
    event: str
    action: str | None
    group: str
    cancel_in_progress: bool
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> "run" or "skipped"
    state: str = "queued"  # pending, in_progress, completed, cancelled

    @property
    def runs_jobs(self) -> bool:
        return any(result == "run" for result in self.jobs.values())


@dataclass
class PullRequest:
    """A pull request's number and labels; its methods give the payload of each event GitHub sends."""

    number: int
    labels: list[str] = field(default_factory=list)

    def payload(self, action: str, label: str | None = None) -> dict:
        event = {"action": action, "number": self.number,
                 "pull_request": {"number": self.number, "state": "open",
                                  "labels": [{"name": name} for name in self.labels]}}
        if label is not None:
            event["label"] = {"name": label}
        return event

    def labeled(self, label: str) -> dict:
        self.labels.append(label)  # the payload shows the pull request after the change
        return self.payload("labeled", label)

    def unlabeled(self, label: str) -> dict:
        self.labels.remove(label)
        return self.payload("unlabeled", label)

    def synchronize(self) -> dict:
        return self.payload("synchronize")

    def reopened(self) -> dict:
        return self.payload("reopened")


class Actions:
    """The runs of one workflow (its parsed YAML) in one repository."""

    def __init__(self, workflow: dict, default_branch: str = "main", variables: dict | None = None):
        self.workflow = workflow
        self.triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as True
        self.default_branch = default_branch
        self.variables = variables or {}
        self.runs: list[Run] = []
        self._ids = itertools.count(1001)

    # Events.

    def pull_request(self, pr: PullRequest, payload: dict) -> Run | None:
        return self._queue("pull_request", payload, f"refs/pull/{pr.number}/merge", {})

    def workflow_dispatch(self, inputs: dict | None = None, branch: str = "main") -> Run | None:
        declared = (self.triggers.get("workflow_dispatch") or {}).get("inputs") or {}
        values = {name: spec.get("default") for name, spec in declared.items()}
        values.update(inputs or {})
        return self._queue("workflow_dispatch", {"inputs": values}, f"refs/heads/{branch}", values)

    def push(self, branch: str) -> Run | None:
        return self._queue("push", {"ref": f"refs/heads/{branch}"}, f"refs/heads/{branch}", {})

    def schedule(self) -> Run | None:
        cron = self.triggers["schedule"][0]["cron"]
        return self._queue("schedule", {"schedule": cron}, f"refs/heads/{self.default_branch}", {})

    def finish(self, run: Run) -> None:
        """A run in progress ends; the run waiting in its group starts."""
        assert run.state == "in_progress", run
        run.state = "completed"
        self._start_pending(run.group)

    # GitHub's side.

    def takes(self, event: str, payload: dict) -> bool:
        if event not in self.triggers:
            return False
        if event == "pull_request":
            types = (self.triggers[event] or {}).get("types", DEFAULT_PULL_REQUEST_TYPES)
            return payload["action"] in types
        return True

    def _queue(self, event: str, payload: dict, ref: str, inputs: dict) -> Run | None:
        if not self.takes(event, payload):
            return None
        run_id = next(self._ids)
        github = {"event_name": event, "event": {**payload, "repository": {"default_branch": self.default_branch}},
                  "ref": ref, "run_id": str(run_id), "workflow": self.workflow["name"],
                  "repository": "owner/orchestrate"}
        evaluator = Evaluator({"github": github, "inputs": inputs, "vars": self.variables})
        concurrency = self.workflow.get("concurrency") or {}
        group = str(evaluator.template(concurrency.get("group", f"run-{run_id}")))
        cancel = evaluator.template(concurrency.get("cancel-in-progress", False))
        run = Run(run_id, event, payload.get("action"), group, cancel is True or cancel == "true")
        run.jobs = self._jobs(github, inputs)
        self.runs.append(run)
        for other in self.in_group(group):
            if other is run:
                continue
            if other.state == "pending" or (other.state == "in_progress" and run.cancel_in_progress):
                other.state = "cancelled"
        if any(other.state == "in_progress" for other in self.in_group(group) if other is not run):
            run.state = "pending"
        else:
            self._start(run)
        return run

    def in_group(self, group: str) -> list[Run]:
        return [r for r in self.runs if r.group.casefold() == group.casefold()]

    def _start(self, run: Run) -> None:
        run.state = "in_progress" if run.runs_jobs else "completed"

    def _start_pending(self, group: str) -> None:
        for run in self.in_group(group):
            if run.state == "pending":
                self._start(run)
                return

    def _jobs(self, github: dict, inputs: dict) -> dict[str, str]:
        """Each job's fate, in `needs` order: 'run' (taken to succeed) or 'skipped'."""
        jobs = self.workflow["jobs"]
        results: dict[str, str] = {}
        while len(results) < len(jobs):
            for name, job in jobs.items():
                needs = job.get("needs", [])
                needs = [needs] if isinstance(needs, str) else needs
                if name in results or any(n not in results for n in needs):
                    continue
                context = {"github": github, "inputs": inputs, "vars": self.variables,
                           "needs": {n: {"result": results[n], "outputs": {}} for n in needs}}
                status = Status([results[n] for n in needs])
                condition = job.get("if", "success()")
                runs = Evaluator(context, status).condition(condition if isinstance(condition, str)
                                                            else str(condition).lower())
                results[name] = "success" if runs else "skipped"
        return {name: "run" if result == "success" else "skipped" for name, result in results.items()}
