"""Read the host: CPU topology for placement, and a snapshot with a fingerprint for provenance."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

from orchestrator import __version__
from orchestrator.host.cpuset import Cpu, parse_cpulist

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def topology() -> tuple[Cpu, ...]:
    """The logical CPUs this process may use, with their core, package and NUMA node."""
    nodes: dict[int, int] = {}
    for node_dir in SYS_NODE.glob("node[0-9]*"):
        cpulist = _read(node_dir / "cpulist")
        for cpu in parse_cpulist(cpulist or ""):
            nodes[cpu] = int(node_dir.name[4:])
    cpus = []
    for cpu_id in sorted(os.sched_getaffinity(0)):
        topo = SYS_CPU / f"cpu{cpu_id}" / "topology"
        core = _read(topo / "core_id")
        package = _read(topo / "physical_package_id")
        cpus.append(Cpu(cpu_id, int(core) if core is not None else cpu_id,
                        int(package) if package is not None else 0, nodes.get(cpu_id, 0)))
    return tuple(cpus)


def cgroup_version() -> int:
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def frequency() -> dict:
    """The CPU frequency used to normalise per GHz, naming its source; null with a reason if unknown.

    Prefers the maximum frequency from cpufreq (sysfs); falls back to the 'cpu MHz'
    /proc/cpuinfo reports (read now), which on virtual machines is often the nominal clock.
    """
    max_khz = _read(SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq")
    if max_khz:
        return {"ghz": int(max_khz) / 1e6, "source": "cpufreq cpuinfo_max_freq (sysfs)"}
    mhz = [float(line.split(":")[1]) for line in (_read(Path("/proc/cpuinfo")) or "").splitlines()
           if line.startswith("cpu MHz")]
    if mhz:
        return {"ghz": round(sum(mhz) / len(mhz) / 1000, 4),
                "source": "mean 'cpu MHz' in /proc/cpuinfo at run start (no cpufreq; on a VM often the nominal clock)"}
    return {"ghz": None, "source": None, "reason": "no cpufreq in sysfs and no 'cpu MHz' in /proc/cpuinfo"}


def snapshot(docker_info: dict | None = None) -> dict:
    """Facts about the host that a RESULT needs to be trusted and compared."""
    import cpuinfo  # here: slow to import, and only a RUN's snapshot needs it
    import psutil

    info = cpuinfo.get_cpu_info()
    uname = platform.uname()
    memory = psutil.virtual_memory()
    cpus = topology()
    snap = {
        "orchestrator_version": __version__,
        "hostname": uname.node,
        "kernel": uname.release,
        "os": f"{uname.system} {uname.version}",
        "machine": uname.machine,
        "python": platform.python_version(),
        "cpu": {
            "brand": info.get("brand_raw"),
            "vendor": info.get("vendor_id_raw"),
            "arch": info.get("arch"),
            "family": info.get("family"),
            "model": info.get("model"),
            "stepping": info.get("stepping"),
            "flags": sorted(info.get("flags", [])),
            "l2_cache_size": info.get("l2_cache_size"),
            "l3_cache_size": info.get("l3_cache_size"),
            "logical_cpus": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cpus": [c.id for c in cpus],
            "topology": [{"id": c.id, "core": c.core, "package": c.package, "node": c.node} for c in cpus],
            "numa_nodes": len({c.node for c in cpus}),
        },
        "frequency": frequency(),
        "governor": _read(SYS_CPU / "cpu0" / "cpufreq" / "scaling_governor"),
        "smt_active": _read(SYS_CPU / "smt" / "active"),
        "boost": _boost(),
        "memory_total_bytes": memory.total,
        "cgroup_version": cgroup_version(),
        "docker": docker_info or {},
    }
    snap["fingerprint"] = fingerprint(snap)
    return snap


def _boost() -> str | None:
    boost = _read(SYS_CPU / "cpufreq" / "boost")
    if boost is not None:
        return "on" if boost == "1" else "off"
    no_turbo = _read(SYS_CPU / "intel_pstate" / "no_turbo")
    if no_turbo is not None:
        return "off" if no_turbo == "1" else "on"
    return None


def fingerprint(snap: dict) -> str:
    """A short hash of the facts that make two hosts comparable (not the hostname)."""
    stable = {
        "cpu": {k: snap["cpu"].get(k) for k in ("brand", "vendor", "arch", "family", "model", "stepping", "flags",
                                                  "logical_cpus", "physical_cores")},
        "memory_total_bytes": snap["memory_total_bytes"],
        "kernel": snap["kernel"],
        "machine": snap["machine"],
        "governor": snap["governor"],
        "smt_active": snap["smt_active"],
        "docker_version": snap.get("docker", {}).get("version"),
    }
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


ROOT = Path(__file__).resolve().parents[2]  # the checkout this orchestrator runs from

def git_commit() -> tuple[str | None, bool | None]:
    """The checkout's git commit and whether it has uncommitted changes (None, None outside git)."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None
