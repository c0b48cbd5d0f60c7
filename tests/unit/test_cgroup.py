"""Reading a CELL's cgroup totals on made-up cgroup trees (v1 and v2)."""

from orchestrator import cgroup


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
