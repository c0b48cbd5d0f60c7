"""Faults of the Docker engine (refused connections, a restart while a CELL runs), simulated behind a fake client.

The fake stands in for the SDK's client (``ping``, ``containers.create/get/list`` and a
container's ``start/wait/reload/logs/kill/remove``) and fails the calls it is told to
with the errors the SDK raises when the engine's socket refuses or drops a connection.
tests/integration/test_faults.py does the same against the real engine through a proxy.
"""

import time

import pytest
import requests.exceptions

from orchestrator.errors import DockerError
from orchestrator.host import dockerapi
from orchestrator.host.dockerapi import ContainerSpec, Docker

REFUSED = requests.exceptions.ConnectionError("('Connection aborted.', ConnectionRefusedError(111, 'refused'))")


class FakeContainer:
    def __init__(self, client, name):
        self.client, self.name = client, name
        self.attrs = {"State": {"ExitCode": 0, "OOMKilled": False, "StartedAt": "2026-11-29T22:00:00.5Z",
                                "FinishedAt": "2026-11-29T22:00:01.5Z"}}

    def start(self):
        self.client.call("start")

    def wait(self, timeout=None):
        self.client.call("wait")
        return {"StatusCode": 0}

    def reload(self):
        self.client.call("reload")

    def logs(self, **kwargs):
        self.client.call("logs")
        return b"runner: done\n"

    def kill(self):
        self.client.call("kill")

    def remove(self, force=False):
        self.client.call("remove")
        self.client.removed.append(self.name)


class FakeContainers:
    def __init__(self, client):
        self.client = client

    def create(self, **kwargs):
        self.client.call("create")
        self.client.created.append(kwargs)
        return FakeContainer(self.client, kwargs["name"])

    def get(self, name):
        self.client.call("get")
        return FakeContainer(self.client, name)

    def list(self, **kwargs):
        self.client.call("list")
        return []


class FakeClient:
    """Counts every call; raises the next queued error of an operation, if any."""

    def __init__(self, **failures):
        self.failures = {op: list(errors) for op, errors in failures.items()}
        self.calls: dict[str, int] = {}
        self.created, self.removed = [], []
        self.containers = FakeContainers(self)

    def call(self, op):
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.failures.get(op):
            raise self.failures[op].pop(0)

    def ping(self):
        self.call("ping")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(dockerapi, "RETRY_MAX_WAIT_S", 0.0)


def spec():
    return ContainerSpec(image="orchestrate/testengine:x", name="orchestrate-run-cell", labels={}, mounts=(),
                         environment={}, cpuset_cpus="1", cpuset_mems=None, mem_limit=2**28, user="65534:65534",
                         cgroup_parent=None)


def test_refused_connections_while_creating_are_retried_and_a_half_made_container_is_removed():
    client = FakeClient(create=[REFUSED, REFUSED])
    ended = Docker(client=client).run(spec(), timeout_s=30)
    assert ended.exit_code == 0 and not ended.timed_out
    assert client.calls["create"] == 3
    assert client.calls["get"] == 2  # before each new try, whatever the lost request made is removed
    assert client.removed[-1] == "orchestrate-run-cell"


def test_an_engine_that_stays_away_ends_in_a_docker_error_after_a_bounded_number_of_tries():
    client = FakeClient(create=[REFUSED] * 100)
    started = time.monotonic()
    with pytest.raises(DockerError, match="cannot create container orchestrate-run-cell"):
        Docker(client=client).run(spec(), timeout_s=30)
    assert client.calls["create"] == dockerapi.RETRY_ATTEMPTS
    assert time.monotonic() - started < 5


def test_an_engine_restarting_while_a_cell_runs_is_waited_out_not_judged_a_timeout():
    client = FakeClient(wait=[REFUSED, REFUSED])
    ended = Docker(client=client).run(spec(), timeout_s=30)
    assert not ended.timed_out and ended.exit_code == 0
    assert client.calls["wait"] == 3
    assert "lost 2 time(s)" in ended.log
    assert client.removed == ["orchestrate-run-cell"]


def test_an_engine_gone_for_good_while_a_cell_runs_is_a_docker_error_and_removal_is_still_tried():
    client = FakeClient(wait=[REFUSED] * 100, remove=[REFUSED] * 100)
    with pytest.raises(DockerError, match="lost the Docker engine while container orchestrate-run-cell ran"):
        Docker(client=client).run(spec(), timeout_s=30)
    assert client.calls["wait"] == dockerapi.RETRY_ATTEMPTS
    assert client.calls["remove"] == dockerapi.RETRY_ATTEMPTS  # bounded; `orchestrate clean` removes it later


def test_a_read_timeout_reported_as_a_connection_error_is_still_a_timeout():
    """Over a Unix socket the SDK reports its own read timeout as a ConnectionError."""
    timeout = requests.exceptions.ConnectionError("UnixHTTPConnectionPool(host='localhost', port=None): "
                                                  "Read timed out.")
    client = FakeClient(wait=[timeout])
    ended = Docker(client=client).run(spec(), timeout_s=30)
    assert ended.timed_out and client.calls["kill"] == 1


def test_an_unreachable_engine_at_start_is_retried_then_reported():
    client = FakeClient(ping=[REFUSED] * 100)
    with pytest.raises(DockerError, match="cannot reach the Docker engine"):
        Docker(client=client)
    assert client.calls["ping"] == 3  # an engine that is not there at all is reported quickly
    assert Docker(client=FakeClient(ping=[REFUSED])).client.calls["ping"] == 2


def test_only_connection_troubles_and_gateway_errors_count_as_transient():
    import docker.errors

    class Response:
        status_code = 503

    assert dockerapi.transient(REFUSED)
    assert dockerapi.transient(docker.errors.APIError("busy", response=Response()))
    assert not dockerapi.transient(docker.errors.APIError("bad request"))
    assert not dockerapi.transient(requests.exceptions.ReadTimeout("slow"))
