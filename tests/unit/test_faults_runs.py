"""RUN folders under faults: one writer at a time, a killed owner seen as interrupted, a full disk at the end."""

import errno
import json
import multiprocessing
import os

import pytest

from orchestrator.errors import ResultError
from orchestrator.execute import ownership
from orchestrator.files import writing

RUNNING = {"run_id": "20261129T220000Z-abcdef", "status": "running", "error": None}


def test_a_run_folder_has_one_writer(tmp_path):
    owner = ownership.RunOwner(tmp_path)
    assert ownership.owner_alive(tmp_path)
    with pytest.raises(ResultError, match=f"being written by another orchestrate process \\(pid {os.getpid()}"):
        ownership.RunOwner(tmp_path)
    owner.release()
    assert not ownership.owner_alive(tmp_path)
    ownership.RunOwner(tmp_path).release()  # free again


def _own_and_die(run_dir):
    ownership.RunOwner(run_dir)
    writing.write_json(run_dir / "run.json", RUNNING)
    (run_dir / ".run.json.x1y2.tmp").write_text('{"half')  # killed in the middle of an atomic write
    os._exit(9)  # no clean-up of any kind, like kill -9


def test_a_run_whose_process_died_is_settled_as_interrupted(tmp_path):
    out = tmp_path / "cells" / "c-1" / "out"
    out.mkdir(parents=True)
    (out / ".result.json.tmp").write_text("the runner's own file")
    child = multiprocessing.get_context("fork").Process(target=_own_and_die, args=(tmp_path,))
    child.start()
    child.join(timeout=10)
    assert child.exitcode == 9 and not ownership.owner_alive(tmp_path)
    run = ownership.settle(tmp_path)
    assert run["status"] == "interrupted"
    assert f"pid {child.pid}" in run["error"] and "ended before the RUN finished" in run["error"]
    assert json.loads((tmp_path / "run.json").read_text()) == run
    assert not (tmp_path / ".run.json.x1y2.tmp").exists() and not (tmp_path / ownership.RESERVE).exists()
    assert (out / ".result.json.tmp").exists()  # what a runner wrote is not the orchestrator's to delete
    assert ownership.settle(tmp_path) == run  # settling twice changes nothing


def test_a_live_run_is_never_settled(tmp_path):
    owner = ownership.RunOwner(tmp_path)
    writing.write_json(tmp_path / "run.json", RUNNING)
    assert ownership.settle(tmp_path)["status"] == "running"
    assert ownership.settle_all(tmp_path.parent) == []
    owner.release()
    assert ownership.settle_all(tmp_path.parent) == [tmp_path]


def test_a_full_disk_at_the_end_still_gets_the_final_run_json_through_the_reserve(tmp_path, monkeypatch):
    owner = ownership.RunOwner(tmp_path)
    assert (tmp_path / ownership.RESERVE).stat().st_size == ownership.RESERVE_BYTES
    real = ownership.writing.write_json
    full = {"left": 1}

    def write(path, document, root=None):  # simulated: the first write finds no room (ENOSPC at the write layer)
        if full["left"] and (tmp_path / ownership.RESERVE).exists():
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, document, root)

    monkeypatch.setattr(ownership.writing, "write_json", write)
    owner.write_run({**RUNNING, "status": "failed"})
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    assert not (tmp_path / ownership.RESERVE).exists()
    monkeypatch.setattr(ownership.writing, "write_json", lambda path, document, root=None: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(path))))
    with pytest.raises(OSError) as caught:  # no reserve left: the error goes up, the old file stays whole
        owner.write_run(RUNNING)
    assert ownership.disk_full(caught.value)
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    owner.release()


def test_a_run_from_a_version_without_an_owner_record_is_left_as_it_is(tmp_path):
    writing.write_json(tmp_path / "run.json", RUNNING)  # no owner.json: nothing tells whether it still runs
    assert ownership.settle(tmp_path)["status"] == "running"
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"


def test_a_disk_too_full_to_start_a_run_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    def full(path, document, root=None):  # simulated ENOSPC at the write layer
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ownership.writing, "write_json", full)
    with pytest.raises(ResultError, match="the results disk is full .*nothing was run") as caught:
        ownership.RunOwner(tmp_path)
    assert caught.value.exit_code == 5
    assert not ownership.owner_alive(tmp_path)
