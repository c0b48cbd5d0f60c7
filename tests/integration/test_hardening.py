"""The locked-down CELL container, proved from Docker's own view of a real RUN's container (inspect and top)."""

import json
from pathlib import Path

from orchestrator.execute.cellrun import RUNNER_USER
from orchestrator.host.dockerapi import LABEL
from orchestrator.results.recordfiles import read_run
from tests.integration.test_faults import fake_env, matrix_text, run_in_thread, running_cell, testengine, wait_for  # noqa: F401

MEMORY = 256 * 2**20


def test_a_cells_container_is_locked_down_as_docker_sees_it(tmp_path, docker, fake_env):  # noqa: F811
    results = tmp_path / "results"
    outcome = run_in_thread(matrix_text("sleep", "ok", timeout=60), results)  # memory_limit: 256m
    run_dir, container = wait_for(lambda: running_cell(docker, results, 0), what="the CELL's container",
                                  outcome=outcome)
    try:
        container.reload()
        attrs = container.attrs
        host, config = attrs["HostConfig"], attrs["Config"]
        processes = container.top(ps_args="-o uid,pid,comm")
    finally:
        container.kill()  # ends the CELL now instead of at its timeout
    outcome["thread"].join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    run = json.loads((run_dir / "run.json").read_text())
    cell = run["plan_order"][0]

    assert host["NetworkMode"] == "none" and list(attrs["NetworkSettings"]["Networks"]) == ["none"]
    assert config["User"] == RUNNER_USER and not config["User"].startswith(("0:", "root"))
    assert {row[0] for row in processes["Processes"]} == {RUNNER_USER.split(":")[0]}  # every process, really
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert set(mounts) == {"/job", "/models", "/out"}
    assert mounts["/job"]["RW"] is False and mounts["/models"]["RW"] is False
    out = Path(mounts["/out"]["Source"])  # the CELL's own output folder (one per batch of repetitions)
    assert mounts["/out"]["RW"] is True and out.name == "out" and (run_dir / "cells" / cell) in out.parents
    assert set(host["Tmpfs"]) == {"/tmp"}
    assert host["Memory"] == MEMORY and host["MemorySwap"] == MEMORY  # no swap beyond the limit
    assert host["PidsLimit"] == 512
    assert host["CpusetCpus"]
    assert config["Labels"][LABEL] == "1"
    assert config["Labels"]["orchestrate.run"] == run["run_id"] and config["Labels"]["orchestrate.cell"] == cell
    assert read_run(run_dir)[0]["status"] == "finished"
    assert docker.list_labelled({"orchestrate.run": run["run_id"]}) == []
