"""ENGINEs whose IMAGEs need a container registry (Ollama, SmallMind): a fast, explained refusal where
none is reachable, and a real build and CELL where one is.

The real build is the only test of the suite that may skip: where the official base images
(and, for SmallMind, GitHub and NuGet) cannot be had, it says so with the reason the build gave.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.engines import ENGINES
from orchestrator.errors import ImageBuildError
from orchestrator.execute import cellrun
from orchestrator.execute.record import CellSettings
from orchestrator.host.cpuset import Assignment
from orchestrator.images import imagebuild
from orchestrator.matrix.matrixfile import Workload
from orchestrator.models import catalogue
from orchestrator.plan import planner

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "orchestrate/no-such-base:0@sha256:" + "0" * 64  # in no registry and on no machine


@pytest.mark.parametrize("name", ["ollama", "smallmind"])
def test_build_without_its_base_image_exits_3_within_10_s_naming_what_is_missing(name, docker, tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "build", name, "--build-arg",
                           f"BASE_IMAGE={NOWHERE}", "--logs", str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert time.monotonic() - started < 10
    assert done.returncode == 3, done.stderr
    assert f"the base image {NOWHERE} is not on this machine" in done.stderr
    assert "docker load -i" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["ollama", "smallmind"])
def test_real_image_builds_and_runs_a_cell(name, docker, logs_dir, tinystories, tmp_path, no_leftovers):
    try:
        image = imagebuild.ensure(docker, ENGINES[name].image_dir, logs_dir)
    except ImageBuildError as exc:
        if "cannot be built on this machine" in str(exc):
            pytest.skip(f"{name}: {exc}")  # no registry (or GitHub) here: the only skip the suite allows
        raise
    workload = Workload(name="registry", prompt="Once upon a time", gen_tokens=8, prompt_tokens=16)
    # SmallMind runs this Llama-family model along its run-gguf path (its public path builds GPT-2 small only)
    options = {"path": "run-gguf"} if name == "smallmind" else {}
    assert ENGINES[name].supports(catalogue.get("tinystories-15m"), "gguf-f32", options) is None
    coordinates = {"engine": name, "engine_options": options, "model": "tinystories-15m", "format": "gguf-f32",
                   "threads": 1, "workload": workload.__dict__}
    cell = planner.Cell(planner.cell_id(coordinates), name, json.dumps(options, sort_keys=True, separators=(",", ":")),
                     "tinystories-15m", "gguf-f32", 1, workload)
    settings = CellSettings("registry", cell, image, tinystories["gguf-f32"],
                            Assignment(cpus=(0,), mems=None, host_core_reserved=False), 0, 2, 4 * 2**30, 600.0,
                            "registry")
    record = cellrun.run_cell(docker, docker.info(), settings, tmp_path / "cell")
    result = record["result"]
    assert result is not None, record["reason"]
    assert result["engine"]["name"] == name and len(result["repetitions"]) == 2
    # Ollama and SmallMind cannot ignore end-of-sequence: a short generation is judged, never hidden
    assert record["status"] == "ok" or "tokens" in (record["reason"] or ""), json.dumps(record)[:2000]
    if name == "ollama":  # the thread count read from Ollama's log; the template's stop strings cleared
        assert result["threads"]["engine_reported"] == 1 and result["extra"]["options"]["stop"] == []
