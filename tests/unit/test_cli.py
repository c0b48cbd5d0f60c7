"""The command line: exit codes, errors without tracebacks, help."""

import json
import os
import subprocess
import sys

import pytest

from orchestrator import cli


def orchestrate(*args, env=None):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_validate_good_and_bad(tmp_path, good_matrix):
    good = tmp_path / "good.yaml"
    good.write_text(good_matrix)
    done = orchestrate("validate", str(good))
    assert done.returncode == 0 and "valid MATRIX, 4 cells" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(good_matrix.replace("threads: [1, 2]", "threads: [1, -2]").replace("version: 1", "version: 9"))
    done = orchestrate("validate", str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert f"{bad}:7: threads[1]:" in done.stderr and f"{bad}:1: version:" in done.stderr


def test_plan_json_lists_cells(tmp_path, good_matrix):
    path = tmp_path / "m.yaml"
    path.write_text(good_matrix)
    cells = json.loads(orchestrate("plan", str(path), "--json").stdout)
    assert [c["threads"] for c in cells] == [1, 2, 1, 2]
    assert all(c["cell_id"].startswith("c-") for c in cells)


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    done = orchestrate("report", str(tmp_path))
    assert done.returncode == 5
    assert done.stderr.startswith("error: ") and "no run.json" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_docker_is_a_clear_error():
    done = orchestrate("clean", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert done.returncode == 3 and "cannot reach the Docker engine" in done.stderr


def test_engines_hides_test_doubles_unless_asked():
    assert "testengine" not in orchestrate("engines").stdout
    assert "TEST DOUBLE" in orchestrate("engines", "--all").stdout


@pytest.mark.parametrize("command", ["run", "plan", "validate", "build", "report", "clean", "engines", "models"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main([command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text and len(text) > 300


def test_report_baseline_option_and_an_unknown_baseline(tmp_path):
    from tests.unit.runfolder import write_run

    run_dir = write_run(tmp_path)
    done = orchestrate("report", str(run_dir), "--baseline", "transformers")
    assert done.returncode == 0, done.stderr
    summary = (run_dir / "tables" / "summary.md").read_text()
    assert "Baseline: **transformers** (chosen with --baseline)" in summary and (run_dir / "report.md").is_file()
    done = orchestrate("report", str(run_dir), "--baseline", "vllm")
    assert done.returncode == 2 and "--baseline vllm: no CELL of engine 'vllm'" in done.stderr
    assert "Traceback" not in done.stderr
