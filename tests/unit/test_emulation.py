"""A CELL whose IMAGE was built for another architecture than the host's ran under emulation: the record says so,
the TABLE and report mark it, compare calls it not comparable and merge keeps it out of native RUNs unless asked."""

from dataclasses import replace

import pytest

from orchestrator.compare import ratios
from orchestrator.errors import ResultError, UsageError
from orchestrator.execute import cellrun
from orchestrator.host import platforms
from orchestrator.images import imagebuild
from orchestrator.merge import frames, machines
from orchestrator.report import exporters
from orchestrator.results.reader import Record
from tests.unit import runs
from tests.unit.records import record
from tests.unit.test_execute import INFO, FakeDocker, good_result, settings

EMULATED = {"emulated": True, "image_architecture": "arm64", "host_architecture": "amd64", "how": "test"}


def test_emulation_is_the_image_architecture_against_the_hosts():
    assert platforms.emulation("arm64", "x86_64")["emulated"] is True
    assert platforms.emulation("amd64", "x86_64")["emulated"] is False
    assert platforms.emulation("arm64", "aarch64")["emulated"] is False
    assert platforms.emulation(None, "x86_64")["emulated"] is None  # not recorded: never guessed
    with pytest.raises(UsageError, match="not one the IMAGEs are built for"):
        platforms.platform_of("linux/riscv64")


def test_a_cell_of_an_arm64_image_on_an_amd64_host_is_recorded_emulated(tmp_path):
    mine = settings(tmp_path, threads=1)
    mine = replace(mine, image=replace(mine.image, architecture="arm64"))
    docker = FakeDocker(write=lambda job: good_result(job["cell_id"], 1))
    done = cellrun.run_cell(docker, {**INFO, "architecture": "x86_64"}, mine, tmp_path / "cell")
    assert done["status"] == "ok"
    assert done["emulation"]["emulated"] is True and done["emulation"]["image_architecture"] == "arm64"
    native = replace(mine, image=replace(mine.image, architecture="amd64"))
    again = cellrun.run_cell(docker, {**INFO, "architecture": "x86_64"}, native, tmp_path / "cell2")
    assert again["emulation"]["emulated"] is False and not Record.read(again).emulated


def test_the_table_and_its_page_mark_emulated_cells():
    rows = [record("c-000000000001"), {**record("c-000000000002"), "emulation": EMULATED}]
    table = frames.cells(rows, {"ghz": 2.5, "source": "test"})
    assert list(table["emulated"]) == [False, True]
    text = exporters.to_markdown(table)
    assert "llama.cpp (EMULATED)" in text and text.count("(EMULATED)") == 1


def test_compare_calls_emulated_cells_not_comparable_unless_asked():
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    emulated = {**runs.cell_record(ids[0], speed=1.5), "emulation": EMULATED}
    b = runs.typed(runs.run_doc(ids), [emulated])
    (found,) = ratios.compare(a, b)
    assert found.verdict == ratios.NOT_COMPARABLE and "ran under emulation on B" in found.reasons[0]
    (forced,) = ratios.compare(a, b, ignore=(ratios.EMULATION,))
    assert forced.verdict == ratios.FASTER


def test_merge_keeps_emulated_runs_apart_and_refuses_them_beside_native_ones(tmp_path):
    native = machines.Source(tmp_path / "a", runs.run_doc(["c-000000000001"], run_id="20260101T000000Z-aaaaaa"),
                             (runs.cell_record("c-000000000001", run_id="20260101T000000Z-aaaaaa"),))
    emulated_record = {**runs.cell_record("c-000000000001", run_id="20260101T000000Z-bbbbbb"), "emulation": EMULATED}
    emulated = machines.Source(tmp_path / "b", runs.run_doc(["c-000000000001"], run_id="20260101T000000Z-bbbbbb"),
                               (emulated_record,))
    assert emulated.machine.startswith("arm64 EMULATED on x86_64") and native.machine.startswith("x86_64")
    with pytest.raises(ResultError, match="ran under emulation .* --include-emulated"):
        machines.combine([native, emulated])
    merged = machines.combine([native, emulated], include_emulated=True)
    assert sorted(merged.machines) == sorted([native.machine, emulated.machine])
    assert merged.refused == {}  # two machines: the CELL is in each once


class Info:
    def __init__(self, arch):
        self.arch = arch

    def info(self):
        return {"architecture": self.arch}


def test_a_foreign_platform_gets_target_build_arguments_and_the_hosts_own_none():
    assert imagebuild.target_args(Info("x86_64"), None) == {}
    assert imagebuild.target_args(Info("x86_64"), "linux/amd64") == {}
    assert imagebuild.target_args(Info("x86_64"), "linux/arm64") == {"TARGETPLATFORM": "linux/arm64",
                                                                    "TARGETARCH": "arm64"}
    assert imagebuild.target_args(Info("aarch64"), "linux/arm64") == {}


def test_ignore_image_compares_cells_of_images_built_from_other_content():
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0], tag="orchestrate/llama.cpp:111111111111")])
    b = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0], tag="orchestrate/llama.cpp:222222222222")])
    (refused,) = ratios.compare(a, b)
    assert refused.verdict == ratios.NOT_COMPARABLE and "image content" in refused.reasons[0]
    (compared,) = ratios.compare(a, b, ignore=(ratios.IMAGE,))
    assert compared.verdict != ratios.NOT_COMPARABLE
