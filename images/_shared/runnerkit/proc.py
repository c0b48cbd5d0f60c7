"""Process facts from /proc: per-thread CPU seconds (of a process tree too) and peak memory."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of a process (from /proc/<pid>/task/*/children, else a scan of /proc)."""
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found += [int(c) for c in handle.read().split()]
        return found
    except OSError:
        pass
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def process_tree(root: int) -> list[int]:
    """The process and all its descendants (an engine that runs as a server's child processes)."""
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue += [c for c in children(pid) if c not in tree]
    return tree


def _thread_cpu_s(pid: int, tid: str) -> tuple[float, str] | None:
    base = f"/proc/{pid}/task/{tid}"
    try:
        with open(f"{base}/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[0]) / 1e9, "schedstat"
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"{base}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS, "stat"
    except (OSError, ValueError, IndexError):
        return None  # the thread ended meanwhile


def _name(pid: int, tid: str) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def thread_times(pids: list[int]) -> tuple[dict[tuple[int, int], float], set[str]]:
    """(pid, tid) -> CPU seconds so far, for every thread of the given processes; the sources used."""
    times, sources = {}, set()
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            read = _thread_cpu_s(pid, tid)
            if read is not None:
                times[(pid, int(tid))] = read[0]
                sources.add(read[1])
    return times, sources


class CpuWindow:
    """Per-thread CPU seconds over a window (the timed repetitions), as the result reports them."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()
        self.per_thread: list[dict] = []
        self.source = ""
        self.threads_seen = 0
        self.wall_s = 0.0

    def __enter__(self) -> CpuWindow:
        self._before, _ = thread_times(process_tree(self.root))
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.monotonic() - self._started
        pids = process_tree(self.root)
        after, sources = thread_times(pids)
        self.threads_seen = len(after)
        self.per_thread = [
            {"tid": tid, "pid": pid, "name": _name(pid, str(tid)),
             "cpu_s": round(max(cpu - self._before.get((pid, tid), 0.0), 0.0), 9)}
            for (pid, tid), cpu in sorted(after.items())]
        self.source = " and ".join(f"/proc/<pid>/task/*/{s}" for s in sorted(sources)) or "none"


@contextmanager
def cpu_window(root: int | None = None):
    """``with cpu_window() as w: ...`` then ``w.per_thread``: every thread of the process tree."""
    window = CpuWindow(root)
    with window:
        yield window


def vm_hwm_bytes(pid: int | str = "self") -> int | None:
    """The process's peak resident set (VmHWM), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_flags(prefixes: tuple[str, ...]) -> list[str]:
    """This CPU's flags (/proc/cpuinfo) that start with one of ``prefixes``; empty when unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return []
    return [flag for flag in line.partition(":")[2].split() if flag.startswith(prefixes)]


def free_port() -> int:
    """A TCP port on loopback that nobody listens on now (for an engine's server inside the CELL)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
