"""Read a CELL's peak memory and CPU time from its cgroup, from outside the container.

Each CELL's container is started under a parent cgroup of its own. The container's
cgroup goes when it exits, but the parent stays and keeps the totals (hierarchical
accounting), so they are read once after exit: nothing polls while a cell runs.
cgroup v1 and v2 are supported with Docker's cgroupfs driver, and with the systemd
driver where the parent slice outlives the container.

With the systemd driver the parent is a slice unit, ``orchestrate-<run>_<cell>.slice``
(systemd reads each ``-`` as a level, so the name has only the one after
``orchestrate``; its cgroup is ``orchestrate.slice/orchestrate-<run>_<cell>.slice``).
systemd keeps such a slice as a unit after its container's scope has gone, so after
the totals are read the slice is stopped through systemctl (which removes its cgroup);
removing the folder alone would leave the unit behind, one per CELL.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
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
        usage["peak_memory_bytes"] = int(memory_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError) as exc:
        usage["unmeasured"]["peak_memory_bytes"] = f"cannot read {memory_file}: {exc}"
    try:
        text = cpu_file.read_text(encoding="utf-8")
        usage["cpu_seconds"] = parse_cpu_stat(text) if version == 2 else int(text.strip()) / 1e9
    except (OSError, ValueError) as exc:
        usage["unmeasured"]["cpu_seconds"] = f"cannot read {cpu_file}: {exc}"
    usage["method"] = (f"cgroup v{version} parent {parent} read after the container exited "
                       f"({memory_file.name}, {cpu_file.name})")
    return usage


def stop_unit(unit: str) -> str | None:
    """Stop a systemd unit (a CELL's slice); None when stopped, else why not."""
    try:
        done = subprocess.run(["systemctl", "stop", "--no-ask-password", unit], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemctl stop {unit}: {exc}"
    return None if done.returncode == 0 else f"systemctl stop {unit}: {done.stderr.strip() or done.returncode}"


def remove(driver: str, version: int, parent: str, root: Path = ROOT,
           stop: Callable[[str], str | None] = stop_unit) -> list[str]:
    """Remove the CELL's parent cgroup once its totals are read; return what is left (empty when clean).

    systemd driver: the slice unit is stopped first (``stop``), so that no unit leaks;
    then any folder still there is removed (best effort: it is empty once the container
    is gone). Never raises: a leftover is reported, the RUN goes on.
    """
    rel = _relative(driver, parent)
    left = []
    if driver == "systemd":
        problem = stop(parent)
        if problem:
            left.append(f"slice unit {parent} not stopped ({problem})")
    controllers = [root] if version == 2 else (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    for candidate in (controller / rel for controller in controllers):
        try:
            candidate.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            left.append(f"cgroup {candidate} not removed ({exc.strerror})")
    return left


def leftovers(driver: str, version: int, run_id: str | None = None, root: Path = ROOT) -> list[str]:
    """Parent cgroups of CELLs still present (their RUN was killed), as given to Docker; one RUN's or all."""
    bases = [root] if version == 2 else (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    if driver == "systemd":
        folder, prefix = "orchestrate.slice", "orchestrate-" + (re.sub(r"[^A-Za-z0-9_]", "_", run_id) + "_"
                                                                 if run_id else "")
        found = {p.name for base in bases for p in (base / folder).glob(prefix + "*.slice") if p.is_dir()}
    else:
        prefix = f"{run_id}." if run_id else ""
        found = {f"/orchestrate/{p.name}" for base in bases if (base / "orchestrate").is_dir()
                 for p in (base / "orchestrate").iterdir() if p.is_dir() and p.name.startswith(prefix)}
    return sorted(found)
