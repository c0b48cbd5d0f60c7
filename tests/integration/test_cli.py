"""The command line against the real Docker engine: clean, interrupt, report."""

import os
import signal
import subprocess
import sys
import time

from tests.conftest import sigint_default

SLEEPY = """\
version: 1
engines:
  - name: testengine
    options: {behaviour: sleep}
models:
  - id: tinystories-15m
    formats: [gguf-q8_0]
threads: [1]
workloads:
  - {name: w, prompt: "Once upon a time", gen_tokens: 4}
timeout_s: 120
"""


def test_clean_removes_orchestrator_containers(docker, logs_dir):
    from orchestrator.images import imagebuild

    tag = imagebuild.ensure(docker, "testengine", logs_dir).tag
    run_id = f"leftover-{os.getpid()}"
    container = docker.client.containers.create(tag, labels={"orchestrate": "1", "orchestrate.run": run_id})
    # --run limits the clean-up to one RUN, so the test never touches another RUN on this machine.
    done = subprocess.run([sys.executable, "-m", "orchestrator", "clean", "--run", run_id], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "removed 1" in done.stdout, done.stdout + done.stderr
    assert container.name not in docker.list_labelled()


def test_interrupting_a_run_removes_its_containers(tmp_path, tinystories, docker, no_leftovers):
    matrix_file = tmp_path / "sleepy.yaml"
    matrix_file.write_text(SLEEPY)
    process = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(matrix_file), "--results",
                                str(tmp_path / "results")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=sigint_default)
    deadline = time.time() + 120
    while not _mine(docker, tmp_path) and time.time() < deadline:
        time.sleep(0.5)
    assert _mine(docker, tmp_path), "the cell's container never started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    run_json = next((tmp_path / "results").glob("*/run.json")).read_text()
    assert '"status": "interrupted"' in run_json
    assert not _mine(docker, tmp_path)


def _mine(docker, tmp_path) -> list[str]:
    """Containers of the RUN this test started (its run id is the folder name under results/)."""
    runs = [p.name for p in (tmp_path / "results").glob("*") if p.is_dir()]
    return [name for name in docker.list_labelled() if any(run in name for run in runs)]
