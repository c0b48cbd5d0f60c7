"""Reading a CELL's cgroup totals on made-up cgroup trees (v1 and v2)."""

import pytest

from orchestrator.host import cgroup


def test_parent_names():
    assert cgroup.parent_name("cgroupfs", "20260101T000000Z-abcdef", "c-0123456789ab") == \
        "/orchestrate/20260101T000000Z-abcdef.c-0123456789ab"
    name = cgroup.parent_name("systemd", "20260101T000000Z-abcdef", "c-0123456789ab")
    assert name.startswith("orchestrate-") and name.endswith(".slice") and name.count("-") == 1


def test_reads_v1_totals_and_removes_the_parent(tmp_path):
    parent = "/orchestrate/r.c-1"
    for controller, name, value in (("memory", "memory.max_usage_in_bytes", "104857600"),
                                    ("cpuacct", "cpuacct.usage", "2500000000")):
        folder = tmp_path / controller / "orchestrate" / "r.c-1"
        folder.mkdir(parents=True)
        (folder / name).write_text(value + "\n")
    usage = cgroup.read_usage("cgroupfs", 1, parent, tmp_path)
    assert usage["peak_memory_bytes"] == 104857600
    assert usage["cpu_seconds"] == 2.5
    assert usage["unmeasured"] == {}
    assert "cgroup v1" in usage["method"]
    for controller in ("memory", "cpuacct"):
        for name in ("memory.max_usage_in_bytes", "cpuacct.usage"):
            (tmp_path / controller / "orchestrate" / "r.c-1" / name).unlink(missing_ok=True)
    cgroup.remove("cgroupfs", 1, parent, tmp_path)
    assert not (tmp_path / "memory" / "orchestrate" / "r.c-1").exists()


def test_reads_v2_totals(tmp_path):
    folder = tmp_path / "orchestrate.slice" / "orchestrate-x.slice"
    folder.mkdir(parents=True)
    (folder / "memory.peak").write_text("2048\n")
    (folder / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    usage = cgroup.read_usage("systemd", 2, "orchestrate-x.slice", tmp_path)
    assert usage["peak_memory_bytes"] == 2048 and usage["cpu_seconds"] == 1.5


def test_missing_files_give_null_with_a_reason(tmp_path):
    usage = cgroup.read_usage("cgroupfs", 2, "/orchestrate/gone", tmp_path)
    assert usage["peak_memory_bytes"] is None and usage["cpu_seconds"] is None
    assert "memory.peak" in usage["unmeasured"]["peak_memory_bytes"]
    assert "cpu.stat" in usage["unmeasured"]["cpu_seconds"]


def test_parse_cpu_stat():
    assert cgroup.parse_cpu_stat("user_usec 5\nusage_usec 2000000\n") == 2.0
    assert cgroup.parse_cpu_stat("nothing 1\n") is None


RUN_ID = "20260101T000000Z-abcdef"
CELL_ID = "c-0123456789ab"


def systemd_v2_tree(root, parent):
    """A cgroup v2 tree as Docker's systemd driver leaves it after a CELL's container exited."""
    folder = root / "orchestrate.slice" / parent
    folder.mkdir(parents=True)
    return folder


def test_systemd_slice_name_has_one_level_below_orchestrate_slice():
    name = cgroup.parent_name("systemd", "run-1.x", "c-0123456789ab")
    assert name == "orchestrate-run_1_x_c_0123456789ab.slice"
    dirs = cgroup.parent_dirs("systemd", 2, name, cgroup.ROOT)
    assert dirs["memory"] == cgroup.ROOT / "orchestrate.slice" / name
    v1 = cgroup.parent_dirs("systemd", 1, name, cgroup.ROOT)
    assert v1["memory"] == cgroup.ROOT / "memory" / "orchestrate.slice" / name
    assert v1["cpu"] == cgroup.ROOT / "cpuacct" / "orchestrate.slice" / name


def test_systemd_slice_is_read_then_stopped_and_nothing_is_left(tmp_path):
    parent = cgroup.parent_name("systemd", RUN_ID, CELL_ID)
    folder = systemd_v2_tree(tmp_path, parent)
    (folder / "memory.peak").write_text("73400320\n")
    (folder / "cpu.stat").write_text("usage_usec 4200000\n")
    usage = cgroup.read_usage("systemd", 2, parent, tmp_path)
    assert (usage["peak_memory_bytes"], usage["cpu_seconds"]) == (73400320, 4.2)
    stopped = []

    def fake_systemctl_stop(unit):  # what systemd does: stop the unit, remove its cgroup
        stopped.append(unit)
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        return None

    assert cgroup.remove("systemd", 2, parent, tmp_path, stop=fake_systemctl_stop) == []
    assert stopped == [parent]
    assert not folder.exists() and (tmp_path / "orchestrate.slice").is_dir()


def test_a_slice_that_cannot_be_stopped_is_reported_and_its_empty_folder_removed(tmp_path):
    parent = cgroup.parent_name("systemd", RUN_ID, CELL_ID)
    folder = systemd_v2_tree(tmp_path, parent)
    left = cgroup.remove("systemd", 2, parent, tmp_path, stop=lambda unit: "Interactive authentication required.")
    assert left == [f"slice unit {parent} not stopped (Interactive authentication required.)"]
    assert not folder.exists()


def test_a_busy_cgroup_is_reported_not_raised(tmp_path):
    parent = "/orchestrate/r.c-1"
    folder = tmp_path / "orchestrate" / "r.c-1"
    folder.mkdir(parents=True)
    (folder / "still-here").write_text("")  # rmdir fails on a folder that is not empty
    left = cgroup.remove("cgroupfs", 2, parent, tmp_path, stop=lambda unit: pytest.fail("cgroupfs has no units"))
    assert len(left) == 1 and str(folder) in left[0]


def test_cgroupfs_never_calls_systemctl_and_gone_folders_are_fine(tmp_path):
    assert cgroup.remove("cgroupfs", 1, "/orchestrate/gone", tmp_path,
                         stop=lambda unit: pytest.fail("cgroupfs has no units")) == []


def test_stop_unit_without_systemctl_says_why(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "systemctl stop x.slice" in cgroup.stop_unit("x.slice")
