"""Read a CELL's peak memory and CPU time from its cgroup, from outside the container.

Each CELL's container is started under a parent cgroup of its own. The container's
cgroup goes when it exits, but the parent stays and keeps the totals (hierarchical
accounting), so they are read once after exit: nothing polls while a cell runs.
cgroup v1 and v2 are supported with Docker's cgroupfs driver, and with the systemd
driver where the parent slice outlives the container.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def parent_name(driver: str, run_id: str, cell_id: str) -> str:
    """The cgroup_parent to give Docker for one CELL."""
    if driver == "systemd":
        return f"orchestrate-{re.sub(r'[^A-Za-z0-9_]', '_', run_id + '_' + cell_id)}.slice"
    return f"/orchestrate/{run_id}.{cell_id}"


def _relative(driver: str, parent: str) -> Path:
    return Path("orchestrate.slice") / parent if driver == "systemd" else Path(parent.lstrip("/"))


def parent_dirs(driver: str, version: int, parent: str, root: Path = ROOT) -> dict[str, Path]:
    """Where the parent's memory and cpu accounting files live."""
    rel = _relative(driver, parent)
    if version == 2:
        return {"memory": root / rel, "cpu": root / rel}
    return {"memory": root / "memory" / rel, "cpu": root / "cpuacct" / rel}


def parse_cpu_stat(text: str) -> float | None:
    """usage_usec from a cgroup v2 cpu.stat, in seconds."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None


def read_usage(driver: str, version: int, parent: str, root: Path = ROOT) -> dict:
    """{'peak_memory_bytes', 'cpu_seconds', 'method', 'unmeasured'} for a finished CELL."""
    dirs = parent_dirs(driver, version, parent, root)
    usage: dict = {"peak_memory_bytes": None, "cpu_seconds": None, "unmeasured": {}}
    if version == 2:
        memory_file, cpu_file = dirs["memory"] / "memory.peak", dirs["cpu"] / "cpu.stat"
    else:
        memory_file, cpu_file = dirs["memory"] / "memory.max_usage_in_bytes", dirs["cpu"] / "cpuacct.usage"
    try:
        usage["peak_memory_bytes"] = int(memory_file.read_text().strip())
    except (OSError, ValueError) as exc:
        usage["unmeasured"]["peak_memory_bytes"] = f"cannot read {memory_file}: {exc}"
    try:
        text = cpu_file.read_text()
        usage["cpu_seconds"] = parse_cpu_stat(text) if version == 2 else int(text.strip()) / 1e9
    except (OSError, ValueError) as exc:
        usage["unmeasured"]["cpu_seconds"] = f"cannot read {cpu_file}: {exc}"
    usage["method"] = (f"cgroup v{version} parent {parent} read after the container exited "
                       f"({memory_file.name}, {cpu_file.name})")
    return usage


def remove(driver: str, version: int, parent: str, root: Path = ROOT) -> None:
    """Remove the CELL's parent cgroup (best effort: it is empty once the container is gone)."""
    rel = _relative(driver, parent)
    candidates = [root / rel] if version == 2 else [controller / rel for controller in root.iterdir()]
    for candidate in candidates:
        try:
            candidate.rmdir()
        except OSError:
            pass
