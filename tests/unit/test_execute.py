"""Running one CELL with a fake Docker behind cellrun.ContainerRunner, and assembling its record."""

import json
from pathlib import Path

import pytest

from orchestrator.errors import DockerError, UsageError
from orchestrator.execute import cellrun, record
from orchestrator.execute.record import CellSettings, Judged
from orchestrator.host.cpuset import Assignment
from orchestrator.host.dockerapi import ContainerSpec, Exit
from orchestrator.images.imagebuild import Built
from orchestrator.matrix.matrixfile import Workload
from orchestrator.models.modelstore import Prepared
from orchestrator.plan import planner
from orchestrator.results.judge import CellStatus
from tests.unit.records import per_thread, repetition

WORKLOAD = Workload(name="w", prompt="Once upon a time", gen_tokens=5, prompt_tokens=4)


def settings(tmp_path, threads=2, options=None, engine="llama.cpp"):
    options = options or {}
    coordinates = {"engine": engine, "engine_options": options, "model": "tinystories-15m", "format": "gguf-f32",
                   "threads": threads, "workload": WORKLOAD.__dict__}
    cell = planner.Cell(planner.cell_id(coordinates), engine, json.dumps(options), "tinystories-15m", "gguf-f32",
                     threads, WORKLOAD)
    (tmp_path / "model").mkdir(exist_ok=True)
    return CellSettings(
        run_id="20260101T000000Z-abcdef", cell=cell,
        image=Built("llama.cpp", "orchestrate/llama.cpp:0123456789ab", "sha256:1", "base", "sha256:2",
                    {"orchestrate.engine.version": "label-version"}, None, False),
        model=Prepared("tinystories-15m", "gguf-f32", tmp_path / "model", "gguf/model-f32.gguf", "0" * 64, 10),
        placement=Assignment(cpus=(0, 1), mems=None, host_core_reserved=False), warmup=0, repetitions=2,
        memory_bytes=2**30, timeout_s=60.0, host_fingerprint="host")


def good_result(cell_id, threads, busy=None):
    return {"schema_version": 1, "cell_id": cell_id, "engine": {"name": "llama.cpp", "version": "v9", "build": {}},
            "measurement_boundary": "in-process",
            "threads": {"requested": threads, "how": "t", "engine_reported": threads,
                        "per_thread": per_thread(busy=threads if busy is None else busy)},
            "load_time_s": 0.1, "peak_rss_bytes": 1000, "prompt_token_ids": [1, 2, 3, 4],
            "repetitions": [repetition(i, 0.04) for i in range(2)], "extra": {}, "unmeasured": {}}


class FakeDocker:
    """Plays a runner: reads the job the container would see, writes what ``write`` returns."""

    def __init__(self, write=None, exit_code=0, raises=None):
        self.write, self.exit_code, self.raises = write, exit_code, raises
        self.specs: list[ContainerSpec] = []
        self.jobs: list[bytes] = []

    def run(self, spec: ContainerSpec, timeout_s: float) -> Exit:
        self.specs.append(spec)
        if self.raises:
            raise self.raises
        mounts = {m.container: Path(m.host) for m in spec.mounts}
        self.jobs.append((mounts["/job"] / "job.json").read_bytes())
        if self.write:
            (mounts["/out"] / "result.json").write_text(json.dumps(self.write(json.loads(self.jobs[-1]))))
        return Exit(self.exit_code, False, False, "2026-01-01T00:00:00.5Z", "2026-01-01T00:00:02Z", "a\nb\n")


INFO = {"cgroup_driver": "cgroupfs", "cgroup_version": "1"}


def test_an_ok_cell_gets_a_record_with_the_threads_verdict(tmp_path):
    cell = settings(tmp_path)
    docker = FakeDocker(lambda job: good_result(job["cell_id"], job["threads"]))
    done = cellrun.run_cell(docker, INFO, cell, tmp_path / "cell")
    assert done["status"] == "ok" and done["reason"] is None
    assert done["threads"]["used"] == 2 and done["threads"]["basis"] == "per-thread CPU"
    assert done["outside"]["wall_s"] == pytest.approx(1.5) and done["provenance"]["engine_version"] == "v9"
    assert json.loads((tmp_path / "cell" / "record.json").read_text()) == done
    spec = docker.specs[0]
    assert spec.cpuset_cpus == "0-1" and spec.user == cellrun.RUNNER_USER and spec.mem_limit == 2**30
    assert {m.container: m.read_only for m in spec.mounts} == {"/job": True, "/models": True, "/out": False}


def test_a_runner_that_uses_fewer_threads_is_ok_with_a_note(tmp_path):
    docker = FakeDocker(lambda job: good_result(job["cell_id"], job["threads"], busy=1))
    done = cellrun.run_cell(docker, INFO, settings(tmp_path), tmp_path / "cell")
    assert done["status"] == "ok" and "1 of the 2 threads" in done["threads"]["note"]
    assert done["threads"]["used"] == 1 and done["result"]["threads"]["engine_reported"] == 2


def test_a_runner_that_uses_more_threads_makes_the_cell_invalid(tmp_path):
    docker = FakeDocker(lambda job: good_result(job["cell_id"], job["threads"], busy=3))
    done = cellrun.run_cell(docker, INFO, settings(tmp_path), tmp_path / "cell")
    assert done["status"] == "invalid" and "ran with 3 threads" in done["reason"]


def test_a_refused_job_is_crashed_with_the_log_tail(tmp_path):
    done = cellrun.run_cell(FakeDocker(exit_code=1), INFO, settings(tmp_path), tmp_path / "cell")
    assert done["status"] == "crashed" and "status 1" in done["reason"]
    assert done["result"] is None and done["threads"]["used"] is None and done["threads"]["basis"] == "none"


def test_a_container_that_does_not_start_is_recorded_not_raised(tmp_path):
    done = cellrun.run_cell(FakeDocker(raises=DockerError("no such image")), INFO, settings(tmp_path),
                            tmp_path / "cell")
    assert done["status"] == "crashed" and "no such image" in done["reason"]
    assert "wall_s" in done["outside"]["unmeasured"]


def test_the_job_carries_only_validated_options(tmp_path):
    docker = FakeDocker(lambda job: good_result(job["cell_id"], job["threads"]))
    cellrun.run_cell(docker, INFO, settings(tmp_path, options={"kv_cache_type": "f32"}), tmp_path / "a")
    assert json.loads(docker.jobs[0])["engine"]["options"] == {"kv_cache_type": "f32"}
    with pytest.raises(UsageError, match="unknown option 'kv_cache'"):
        cellrun.run_cell(docker, INFO, settings(tmp_path, options={"kv_cache": "f32"}), tmp_path / "b")


def test_an_edge_case_job_file_replaces_the_job_the_container_reads(tmp_path):
    docker = FakeDocker(exit_code=1)
    cellrun.run_cell(docker, INFO, settings(tmp_path), tmp_path / "cell", job_file=b"{not json")
    assert docker.jobs == [b"{not json"]


def test_record_assembly_is_pure_and_schema_shaped(tmp_path):
    cell = settings(tmp_path, threads=1)
    ended = Exit(0, False, False, None, "2026-01-01T00:00:02Z", "\n".join(f"line {i}" for i in range(30)))
    usage = {"peak_memory_bytes": 5, "cpu_seconds": 1.0, "method": "test", "unmeasured": {}}
    result = good_result(cell.cell.cell_id, 1)
    document = record.assemble(cell, ended, usage, Judged(CellStatus.OK, None, result))
    assert document["outside"]["wall_s"] is None and "wall_s" in document["outside"]["unmeasured"]
    assert document["log_tail"].splitlines() == [f"line {i}" for i in range(10, 30)]
    assert document["threads"]["used"] == 1 and document["limits"]["pids"] == record.PIDS_LIMIT
    assert document["cell"]["repetitions"] == 2 and document["test_double"] is False


@pytest.mark.parametrize("text,expected", [
    ("2026-01-01T00:00:01.5Z", 1767225601.5),
    ("2026-01-01T01:00:01+01:00", 1767225601.0),
    ("0001-01-01T00:00:00Z", None),
    (None, None),
])
def test_docker_time(text, expected):
    assert record.docker_time(text) == expected
