"""Faults a RUN must survive, against the real Docker engine with the testengine test double.

kill -9 and Ctrl-C (an image build, a tool container of model preparation, a CELL), a
full results disk (a real tmpfs), two RUNs writing into one results folder, and the
Docker engine lost mid-RUN: the engine itself is not restarted here (other people's
containers and builds share it); its socket is reached through a proxy in this test
that drops every connection and refuses new ones, which is what the SDK sees when the
daemon restarts.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from orchestrator import schemas
from orchestrator.errors import ResultError
from orchestrator.execute import ownership
from orchestrator.files import writing
from orchestrator.host import cgroup, dockerapi
from orchestrator.images import imagebuild
from orchestrator.matrix import matrixfile
from orchestrator.models import catalogue, modelstore
from orchestrator.models.catalogue import FORMAT_FILES
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run
from tests.conftest import sigint_default

ROOT = Path(__file__).resolve().parents[2]

MATRIX = """\
version: 1
engines:
  - name: testengine
    options: {{behaviour: {first}}}
  - name: testengine
    options: {second}
models:
  - id: tinystories-15m
    formats: [gguf-q8_0]
threads: [1]
workloads:
  - {{name: w, prompt: "Once upon a time", gen_tokens: 4}}
repetitions: 2
memory_limit: 256m
timeout_s: {timeout}
"""


def matrix_text(first="ok", second="sleep", timeout=120) -> str:
    """Two testengine CELLs; ``second=None`` gives the engine's default options (behaviour ok)."""
    return MATRIX.format(first=first, second=f"{{behaviour: {second}}}" if second else "{}", timeout=timeout)


def make_fake_store(root: Path) -> Path:
    """A model store with stand-in files for tinystories-15m (the testengine reads no model)."""
    folder = modelstore.folder(catalogue.get("tinystories-15m"), root)
    if (folder / "manifest.json").is_file():
        return root
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "config.json").write_text("{}")
    (folder / "gguf").mkdir()
    files = {}
    for fmt in ("safetensors", "gguf-f32", "gguf-q8_0"):
        path = folder / FORMAT_FILES[fmt]
        if not path.exists():
            path.write_bytes(b"stand-in for " + fmt.encode())
        files[fmt] = {"path": FORMAT_FILES[fmt], "sha256": modelstore.sha256_of(path), "size": 1, "tool": "test stand-in",
                      "parent": None}
    writing.write_json(folder / "manifest.json", {"schema_version": 1, "files": files})
    return root


@pytest.fixture(scope="session")
def testengine(docker, logs_dir):
    return imagebuild.ensure(docker, "testengine", logs_dir)


@pytest.fixture
def fake_env(tmp_path_factory, monkeypatch, testengine):
    """ORCHESTRATE_MODEL_STORE (stand-in model) and a smoke cache of this session, here and for subprocesses."""
    base = tmp_path_factory.getbasetemp()
    env = {"ORCHESTRATE_MODEL_STORE": str(make_fake_store(base / "fake-store")),
           "ORCHESTRATE_SMOKE_CACHE": str(base / "smoke-cache")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


def start_run(tmp_path, env, text: str, results: Path | None = None) -> subprocess.Popen:
    matrix_file = tmp_path / f"matrix-{uuid.uuid4().hex[:6]}.yaml"
    matrix_file.write_text(text)
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(matrix_file), "--results",
                             str(results or tmp_path / "results")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, preexec_fn=sigint_default)


def wait_for(condition, timeout=90, what="condition", outcome=None):
    """Poll until ``condition()`` gives something; fail early when the RUN in ``outcome`` has failed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if outcome and "error" in outcome:
            raise AssertionError(f"the RUN failed while waiting for {what}") from outcome["error"]
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def running_cell(docker, results: Path, index: int):
    """(run folder, container) once the RUN's CELL number ``index`` runs in its container."""
    for run_json in results.glob("*/run.json"):
        run = json.loads(run_json.read_text())
        if len(run["plan_order"]) <= index:
            continue
        cell = run["plan_order"][index]
        for container in docker.client.containers.list(filters={"label": [f"orchestrate.run={run['run_id']}",
                                                                          f"orchestrate.cell={cell}"]}):
            return run_json.parent, container
    return None


def orchestrator_files(run_dir: Path) -> list[Path]:
    """Every file the orchestrator wrote in a RUN folder (not what runners wrote under out/)."""
    return [p for p in run_dir.rglob("*") if p.is_file() and "out" not in p.relative_to(run_dir).parts]


def assert_whole(run_dir: Path) -> None:
    """No half-written file: every JSON file parses, no temporary file of an atomic write is left."""
    for path in orchestrator_files(run_dir):
        assert not path.name.endswith(".tmp"), f"left over: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())
    for record in run_dir.glob("cells/*/record.json"):
        schemas.check("record", json.loads(record.read_text()), str(record))


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_kill_9_half_way_leaves_whole_files_and_clean_lists_and_removes_what_was_left(tmp_path, docker, fake_env):
    results = tmp_path / "results"
    process = start_run(tmp_path, fake_env, matrix_text())
    try:
        run_dir, container = wait_for(lambda: running_cell(docker, results, 1), what="the second CELL's container")
    finally:
        process.kill()  # SIGKILL: no handler, no finally, no clean-up
        process.communicate(timeout=30)
    run_id = run_dir.name
    assert container.name in docker.list_labelled({"orchestrate.run": run_id})  # left running
    info = docker.info()
    left = cgroup.leftovers(info["cgroup_driver"], int(info["cgroup_version"]), run_id)
    assert left, "the killed RUN's CELL cgroup should still be there"
    left_run = json.loads((run_dir / "run.json").read_text())
    assert left_run["status"] == "running"
    assert (run_dir / "cells" / left_run["plan_order"][0] / "record.json").is_file()
    assert not ownership.owner_alive(run_dir)

    done = cli("clean", "--run", run_id, "--results", str(results), env=fake_env)
    assert done.returncode == 0, done.stderr
    assert f"removing container {container.name}" in done.stdout  # listed first
    assert "removed 1 orchestrator container(s)" in done.stdout
    assert all(f"removed cgroup {parent}" in done.stdout for parent in left)
    assert f"RUN {run_id} marked interrupted" in done.stdout
    assert docker.list_labelled({"orchestrate.run": run_id}) == []
    assert cgroup.leftovers(info["cgroup_driver"], int(info["cgroup_version"]), run_id) == []
    assert_whole(run_dir)
    run, records = read_run(run_dir)
    assert run["status"] == "interrupted" and "ended before the RUN finished" in run["error"]
    assert [r["status"] for r in records] == ["ok"]

    report = cli("report", str(run_dir), env=fake_env)
    assert report.returncode == 0, report.stderr
    assert f"RUN {run_id} is interrupted" in report.stderr


def test_ctrl_c_during_a_cell_leaves_nothing_running_and_marks_the_run(tmp_path, docker, fake_env):
    results = tmp_path / "results"
    process = start_run(tmp_path, fake_env, matrix_text())
    run_dir, container = wait_for(lambda: running_cell(docker, results, 1), what="the second CELL's container")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    run_id = run_dir.name
    assert docker.list_labelled({"orchestrate.run": run_id}) == []
    info = docker.info()
    assert cgroup.leftovers(info["cgroup_driver"], int(info["cgroup_version"]), run_id) == []
    assert_whole(run_dir)
    assert read_run(run_dir)[0]["status"] == "interrupted"


def test_ctrl_c_during_an_image_build_stops_the_build_and_leaves_no_image(tmp_path, docker, testengine):
    marker = f"f8-build-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "images" / "slowbuild"
    folder.mkdir(parents=True)
    base = imagebuild.default_base((imagebuild.IMAGES_DIR / "testengine" / "Dockerfile").read_text())
    (folder / "Dockerfile").write_text(f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\nRUN echo {marker} && sleep 300\n")
    script = ("import sys; from pathlib import Path; from orchestrator import cli; "
              "from orchestrator.images import imagebuild; "
              "imagebuild.IMAGES_DIR = Path(sys.argv[1]); "
              "sys.exit(cli.main(['build', 'slowbuild', '--logs', sys.argv[2]]))")
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "images"), str(tmp_path / "logs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               preexec_fn=sigint_default)

    def building():
        return [c for c in docker.client.containers.list(all=True, sparse=True) if marker in c.attrs.get("Command", "")]

    try:
        wait_for(lambda: [c for c in building() if c.attrs.get("State") == "running"], what="the RUN step")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    wait_for(lambda: not building(), timeout=30, what="the build container to go")
    tag = next(line.split()[2] for line in err.splitlines() if line.startswith("building image"))
    assert docker.image_id(tag) is None


def test_ctrl_c_during_model_preparation_stops_the_tool_and_leaves_nothing_half_made(tmp_path, docker, testengine):
    """A real tool container (the testengine image standing in for modelmaker) interrupted half way."""
    store = tmp_path / "store"
    script = """\
import sys
from orchestrator import cli
from orchestrator.host.dockerapi import Docker
from orchestrator.images import imagebuild
built = imagebuild.ensure(Docker(), "testengine", sys.argv[2])
imagebuild.ensure = lambda *args, **kwargs: built
real = Docker.run_tool
def slow(self, image, command, mounts, *args, **kwargs):  # a tool that writes half its output, then works on
    work = "mkdir -p /out/hf && echo half > /out/hf/model.safetensors && echo tool-started && exec sleep 300"
    return real(self, image, ["sh", "-c", work], mounts, *args, **kwargs)
Docker.run_tool = slow
sys.exit(cli.main(["models", "prepare", "tinystories-15m", "--format", "gguf-f32", "--store", sys.argv[1],
                   "--logs", sys.argv[2]]))
"""
    process = subprocess.Popen([sys.executable, "-c", script, str(store), str(tmp_path / "logs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               preexec_fn=sigint_default)
    name = f"orchestrate-tool-{process.pid}"
    try:
        folder = modelstore.folder(catalogue.get("tinystories-15m"), store)
        wait_for(lambda: (folder / ".work-base" / "hf" / "model.safetensors").exists(), what="the tool to start")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert name not in [c.name for c in docker.client.containers.list(all=True, sparse=True)]
    assert sorted(p.name for p in folder.iterdir()) == []  # no work folder, no manifest, no model file
    assert modelstore.lookup(catalogue.get("tinystories-15m"), "gguf-f32", store) is None


def test_an_unreachable_docker_engine_is_reported_with_exit_3_and_no_run_folder(tmp_path, fake_env):
    matrix_file = tmp_path / "m.yaml"
    matrix_file.write_text(matrix_text("ok", None))
    started = time.monotonic()
    done = cli("run", str(matrix_file), "--results", str(tmp_path / "results"),
               env={**fake_env, "DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert done.returncode == 3, done.stderr
    assert "cannot reach the Docker engine" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    assert time.monotonic() - started < 30  # retried, but bounded


class SocketProxy:
    """A Unix socket forwarding to the Docker engine's; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target = path, target
        self.connections: list[socket.socket] = []
        self.server = None

    def start(self):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(64)
        self.server.settimeout(0.2)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def cut(self):
        server, self.server = self.server, None
        server.close()
        self.path.unlink()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.connections.clear()

    def _accept(self, server):
        while self.server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxy(tmp_path, monkeypatch):
    path = Path(f"/tmp/f8-{uuid.uuid4().hex[:8]}.sock")  # a Unix socket path must be short
    proxied = SocketProxy(path)
    proxied.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield proxied
    if proxied.server:
        proxied.cut()


def run_in_thread(text: str, results: Path) -> dict:
    outcome: dict = {}

    def target():
        try:
            outcome["run_dir"] = execute_run(matrixfile.parse(text, "faults.yaml"), results, lambda _: None)
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=target, daemon=True)
    outcome["thread"].start()
    return outcome


def test_a_docker_engine_restart_mid_cell_is_waited_out(tmp_path, docker, fake_env, proxy):
    """The engine's socket goes away for 3 s while a CELL runs: the CELL still ends as it would have."""
    results = tmp_path / "results"
    outcome = run_in_thread(matrix_text("sleep", "ok", timeout=8), results)
    wait_for(lambda: running_cell(docker, results, 0), what="the first CELL's container", outcome=outcome)
    proxy.cut()
    time.sleep(3)
    proxy.start()
    outcome["thread"].join(timeout=90)
    assert "error" not in outcome, outcome.get("error")
    run, records = read_run(outcome["run_dir"])
    assert run["status"] == "finished"
    assert [r["status"] for r in records] == ["timeout", "ok"]
    assert records[0]["outside"]["wall_s"] >= 7  # not cut short: the wait went on after the outage
    logs = (outcome["run_dir"] / "cells" / records[0]["cell_id"]).glob("batches/*/runner.log")
    assert any("connection to the Docker engine was lost" in log.read_text() for log in logs)
    assert docker.list_labelled({"orchestrate.run": run["run_id"]}) == []


def test_a_docker_engine_gone_for_good_ends_cells_crashed_and_the_run_cleanly(tmp_path, docker, fake_env, proxy,
                                                                              monkeypatch):
    monkeypatch.setattr(dockerapi, "RETRY_MAX_WAIT_S", 0.5)  # the same bounded tries, shorter waits
    results = tmp_path / "results"
    outcome = run_in_thread(matrix_text("sleep", "ok", timeout=60), results)
    run_dir, container = wait_for(lambda: running_cell(docker, results, 0), what="the first CELL's container",
                                  outcome=outcome)
    proxy.cut()
    try:
        outcome["thread"].join(timeout=90)
        assert "error" not in outcome, outcome.get("error")
        run, records = read_run(outcome["run_dir"])
        assert run["status"] == "finished" and run["counts"]["crashed"] == 2
        assert "lost the Docker engine while container" in records[0]["reason"]
        assert "cannot create container" in records[1]["reason"]
        assert_whole(outcome["run_dir"])
    finally:
        container.remove(force=True)  # the real engine never went away; remove what the RUN could not
        info = docker.info()
        for parent in cgroup.leftovers(info["cgroup_driver"], int(info["cgroup_version"]), run_dir.name):
            cgroup.remove(info["cgroup_driver"], int(info["cgroup_version"]), parent)


def test_a_full_results_disk_stops_the_run_with_a_clear_message_and_keeps_every_record(tmp_path, docker, fake_env):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; tests/unit/test_faults_runs.py simulates ENOSPC instead")
    results = tmp_path / "small-disk"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(results)], check=True)
    try:
        filled = []

        def progress(line):  # after the first CELL, fill the disk to the last byte
            if line.startswith("    ok in") and not filled:
                with open(results / "filler", "wb") as handle:
                    try:
                        while True:
                            handle.write(b"\0" * 65536)
                            handle.flush()
                    except OSError:
                        pass
                filled.append(True)

        with pytest.raises(ResultError, match="the results disk is full") as caught:
            execute_run(matrixfile.parse(matrix_text("ok", None).replace("repetitions: 2", "repetitions: 3"), "f.yaml"),
                        results, progress)
        assert caught.value.exit_code == 5
        assert "is complete (written atomically)" in str(caught.value)
        run_dir = next(p for p in results.iterdir() if p.is_dir())
        (results / "filler").unlink()
        assert_whole(run_dir)
        run = json.loads((run_dir / "run.json").read_text())
        assert run["status"] == "failed" and "the results disk is full" in run["error"]
        assert len(list(run_dir.glob("cells/*/record.json"))) == 1
        assert docker.list_labelled({"orchestrate.run": run_dir.name}) == []
    finally:
        subprocess.run(["umount", str(results)], check=True)


def test_two_runs_writing_into_one_results_folder_keep_apart(tmp_path, fake_env):
    results = tmp_path / "shared"
    processes = [start_run(tmp_path, fake_env, matrix_text("ok", None), results) for _ in range(2)]
    outputs = [p.communicate(timeout=150) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    run_dirs = sorted(p for p in results.iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    owners = set()
    for run_dir in run_dirs:
        run, records = read_run(run_dir)
        assert run["status"] == "finished" and run["run_id"] == run_dir.name
        assert {r["run_id"] for r in records} == {run_dir.name} and len(records) == 2
        owners.add(json.loads((run_dir / ownership.OWNER).read_text())["pid"])
        assert not ownership.owner_alive(run_dir)
        assert_whole(run_dir)
    assert owners == {p.pid for p in processes}
    shutil.rmtree(results)
