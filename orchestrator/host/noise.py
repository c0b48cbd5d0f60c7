"""Noise guards and measured frequency: what the host did on a CELL's cores while the CELL ran.

The impure shell (``Watch``) reads /proc/stat, /proc/vmstat, thermal throttle counters and
the current frequency of the CELL's CPUs before, during and after a batch; the pure core
(``assess``, ``frequency``) turns those readings into figures and flags with stated
thresholds. A value that could not be read is None, with the reason beside it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
SYS_CPU = Path("/sys/devices/system/cpu")
SAMPLE_EVERY_S = 0.25

# Flag thresholds, as fractions of the CELL's core-time (wall time x its CPUs).
STEAL_LIMIT = 0.01  # the hypervisor ran someone else on our vCPUs for more than 1 % of the time
OTHER_LIMIT = 0.05  # other processes used more than 5 % of the CELL's cores
# other processes used more than a quarter of the whole machine (any core) while the CELL ran: an
# orchestrator on its reserved core stays far below it; a build or a second RUN beside it does not
MACHINE_LIMIT = 0.25
# Any swap-in (pswpin > 0) and any increase of a thermal throttle counter is flagged.
CAVEAT = {"/proc/cpuinfo cpu MHz": " (no cpufreq: the kernel's figure, on a VM often the nominal clock)"}


def _ticks_per_s() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def parse_stat(text: str) -> dict[str, list[int]]:
    """/proc/stat's cpu lines: name ('cpu', 'cpu0', ...) -> the jiffy counters in kernel order."""
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu"):
            name, *values = line.split()
            out[name] = [int(v) for v in values]
    return out


def busy(counters: list[int]) -> int:
    """Jiffies a CPU was busy: user+nice+system+irq+softirq+steal (guest time is inside user already)."""
    fields = counters + [0] * (8 - len(counters))
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@dataclass(frozen=True)
class Reading:
    """One look at the host: wall time, /proc/stat, swap-ins and throttle counts of the CELL's CPUs."""

    at: float
    stat: dict[str, list[int]] | None
    pswpin: int | None
    throttle: dict[int, int] | None  # cpu -> core_throttle_count


def read(cpus: tuple[int, ...]) -> Reading:
    """Read the counters now (impure)."""
    stat_text = _read(PROC / "stat")
    vmstat = _read(PROC / "vmstat") or ""
    pswpin = next((int(line.split()[1]) for line in vmstat.splitlines() if line.startswith("pswpin ")), None)
    throttle = {}
    for cpu in cpus:
        text = _read(SYS_CPU / f"cpu{cpu}" / "thermal_throttle" / "core_throttle_count")
        if text is not None and text.strip().isdigit():
            throttle[cpu] = int(text)
    return Reading(time.time(), parse_stat(stat_text) if stat_text else None, pswpin, throttle or None)


def sample_frequency(cpus: tuple[int, ...]) -> tuple[list[float], str | None]:
    """Current MHz of each CPU now: cpufreq scaling_cur_freq, else /proc/cpuinfo 'cpu MHz'; and the source."""
    found = []
    for cpu in cpus:
        text = _read(SYS_CPU / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq")
        if text and text.strip().isdigit():
            found.append(int(text) / 1000)
    if found and len(found) == len(cpus):
        return found, "scaling_cur_freq"
    mhz, current = {}, None
    for line in (_read(PROC / "cpuinfo") or "").splitlines():
        if line.startswith("processor"):
            current = int(line.split(":")[1])
        elif line.startswith("cpu MHz") and current is not None:
            mhz[current] = float(line.split(":")[1])
    if all(cpu in mhz for cpu in cpus) and cpus:
        return [mhz[cpu] for cpu in cpus], "/proc/cpuinfo cpu MHz"
    return [], None


@dataclass
class Watch:
    """Watch a batch: counters before and after, the frequency of its CPUs sampled while it runs."""

    cpus: tuple[int, ...]
    before: Reading | None = None
    after: Reading | None = None
    mhz: list[float] = field(default_factory=list)
    source: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self.before = read(self.cpus)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            values, source = sample_frequency(self.cpus)
            if values:
                self.mhz.extend(values)
                self.source = source
            self._stop.wait(SAMPLE_EVERY_S)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.after = read(self.cpus)


def assess(before: Reading, after: Reading, cpus: tuple[int, ...], cell_cpu_s: float | None,
           ticks: int | None = None) -> dict:
    """Noise figures of one batch and the flags past the thresholds (pure)."""
    ticks = ticks or _ticks_per_s()
    wall = max(after.at - before.at, 1e-9)
    out: dict = {"wall_s": wall, "cpus": list(cpus), "unmeasured": {}, "flags": [],
                 "thresholds": {"steal": STEAL_LIMIT, "other_cpu": OTHER_LIMIT, "swap_in_pages": 0,
                                "throttle_events": 0}}
    names = [f"cpu{c}" for c in cpus]
    if before.stat and after.stat and all(n in before.stat and n in after.stat for n in names):
        steal = sum(after.stat[n][7] - before.stat[n][7] for n in names if len(after.stat[n]) > 7) / ticks
        used = sum(busy(after.stat[n]) - busy(before.stat[n]) for n in names) / ticks
        out["steal_s"] = steal
        out["steal_share"] = steal / (wall * len(cpus))
        # The whole machine: shared caches and memory bandwidth connect the cores, so work on any other core
        # slows the CELL too.
        every = [n for n in after.stat if n.startswith("cpu") and n != "cpu" and n in before.stat]
        machine_used = sum(busy(after.stat[n]) - busy(before.stat[n]) for n in every) / ticks
        machine_steal = sum(after.stat[n][7] - before.stat[n][7] for n in every if len(after.stat[n]) > 7) / ticks
        if cell_cpu_s is None:
            out["other_cpu_s"] = out["other_cpu_share"] = None
            out["machine_other_cpu_s"] = out["machine_other_share"] = None
            out["unmeasured"]["other_cpu_s"] = "the CELL's cgroup CPU time was not read"
        else:
            # busy time of the CELL's CPUs less what its own cgroup used (steal excluded: counted above)
            other = max(used - steal - cell_cpu_s, 0.0)
            out["other_cpu_s"] = other
            out["other_cpu_share"] = other / (wall * len(cpus))
            machine_other = max(machine_used - machine_steal - cell_cpu_s, 0.0)
            out["machine_other_cpu_s"] = machine_other
            out["machine_other_share"] = machine_other / (wall * max(len(every), 1))
    else:
        out["steal_s"] = out["steal_share"] = out["other_cpu_s"] = out["other_cpu_share"] = None
        out["machine_other_cpu_s"] = out["machine_other_share"] = None
        out["unmeasured"]["steal_s"] = out["unmeasured"]["other_cpu_s"] = "no per-CPU lines in /proc/stat"
    if before.pswpin is not None and after.pswpin is not None:
        out["swap_in_pages"] = after.pswpin - before.pswpin
    else:
        out["swap_in_pages"] = None
        out["unmeasured"]["swap_in_pages"] = "no pswpin in /proc/vmstat"
    if before.throttle and after.throttle:
        out["throttle_events"] = sum(after.throttle.get(c, 0) - before.throttle.get(c, 0) for c in before.throttle)
    else:
        out["throttle_events"] = None
        out["unmeasured"]["throttle_events"] = "no thermal_throttle counters in sysfs (common on VMs and arm64)"
    out["flags"] = flags(out)
    return out


def flags(noise: dict) -> list[str]:
    """The names of the guards a batch tripped (pure)."""
    found = []
    if (noise.get("steal_share") or 0) > STEAL_LIMIT:
        found.append("steal")
    if (noise.get("other_cpu_share") or 0) > OTHER_LIMIT:
        found.append("other-processes")
    if (noise.get("machine_other_share") or 0) > MACHINE_LIMIT:
        found.append("machine-busy")
    if (noise.get("swap_in_pages") or 0) > 0:
        found.append("swap-in")
    if (noise.get("throttle_events") or 0) > 0:
        found.append("throttled")
    return found


def frequency(mhz: list[float], source: str | None, cpus: tuple[int, ...], advertised: dict) -> dict:
    """The frequency for per-GHz figures: the mean sampled during the batch, else the advertised one (pure)."""
    if mhz:
        return {"ghz": round(sum(mhz) / len(mhz) / 1000, 4),
                "source": f"sampled: mean of {len(mhz)} readings of {source} over CPUs "
                          f"{','.join(map(str, cpus))} during the CELL{CAVEAT.get(source, '')}", "samples": len(mhz),
                "sampler": source, "cpus": list(cpus)}
    if advertised.get("ghz"):
        return {"ghz": advertised["ghz"], "source": f"advertised: {advertised.get('source')} (nothing sampled "
                "during the CELL: no scaling_cur_freq and no per-CPU 'cpu MHz')", "samples": 0}
    return {"ghz": None, "source": None, "samples": 0,
            "reason": "no frequency sampled during the CELL and none advertised: "
                      + str(advertised.get("reason", "unknown"))}
