"""File locks that keep orchestrator processes apart, and what a lock tells about a RUN whose owner is gone.

A RUN folder holds ``.lock``, flock-ed by the process that runs it for the whole RUN
(the kernel drops the lock when that process dies, even by ``kill -9``), and
``owner.json`` (pid, host, start). A run.json that still says ``running`` while nobody
holds the lock belongs to a RUN that was interrupted; :func:`settle` marks it so.
A model folder in the store is prepared under ``<folder>.lock``, so two processes never
make the same model at once.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from orchestrator.errors import ResultError
from orchestrator.results import write_json_atomic

RUN_LOCK = ".lock"
OWNER = "owner.json"
RESERVE = ".reserve"  # freed to write the final run.json when the results disk is full
RESERVE_BYTES = 256 * 1024
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_full(exc: BaseException) -> bool:
    """Whether an error means the file system has no room left."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


class RunOwner:
    """This process's hold on a RUN folder: the lock, owner.json and a little reserved space."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.lock = FileLock(self.run_dir / RUN_LOCK)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise ResultError(f"{self.run_dir} is being written by another orchestrate process "
                              f"({describe_owner(self.run_dir)})") from None
        try:
            write_json_atomic(self.run_dir / OWNER, {"pid": os.getpid(), "host": socket.gethostname(),
                                                     "started_at": _now()})
            with open(self.run_dir / RESERVE, "wb") as handle:
                handle.write(b"\0" * RESERVE_BYTES)
                os.fsync(handle.fileno())
        except OSError as exc:
            self.release()
            if not disk_full(exc):
                raise
            raise ResultError(f"the results disk is full ({self.run_dir}: {exc.strerror}); nothing was run. "
                              "Free some space or give another --results folder") from None

    def write_run(self, record: dict) -> None:
        """Write run.json atomically; when the disk is full, give up the reserve and try once more."""
        try:
            write_json_atomic(self.run_dir / "run.json", record)
        except OSError as exc:
            if not disk_full(exc) or not (self.run_dir / RESERVE).exists():
                raise
            (self.run_dir / RESERVE).unlink()
            write_json_atomic(self.run_dir / "run.json", record)

    def release(self) -> None:
        """Let go of the RUN folder (the RUN has ended, one way or another)."""
        (self.run_dir / RESERVE).unlink(missing_ok=True)
        self.lock.release()


def owner_alive(run_dir: Path) -> bool:
    """Whether some process holds the RUN folder's lock right now."""
    path = Path(run_dir) / RUN_LOCK
    if not path.exists():
        return False
    probe = FileLock(path)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def describe_owner(run_dir: Path) -> str:
    try:
        owner = json.loads((Path(run_dir) / OWNER).read_text())
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


def settle(run_dir: Path) -> dict | None:
    """Mark a RUN left ``running`` by a process that is gone as ``interrupted``; return run.json.

    Takes the RUN's lock first, so a live RUN is never touched and two readers never
    settle the same RUN. Leftover temporary files of interrupted atomic writes are removed.
    Returns None when the folder has no readable run.json.
    """
    run_dir = Path(run_dir)
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or run.get("status") != "running" or not (run_dir / OWNER).is_file():
        return run  # finished, or from a version that kept no lock: nothing tells whether it lives
    lock = FileLock(run_dir / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return run  # the RUN is alive
    try:
        run = json.loads((run_dir / "run.json").read_text())
        if run.get("status") != "running":
            return run
        run["status"] = "interrupted"
        run["error"] = (f"the orchestrate process that ran this RUN ({describe_owner(run_dir)}) ended "
                        "before the RUN finished (killed?); cells without a record.json did not run")
        for stale in [*_temporary_files(run_dir), run_dir / RESERVE]:
            stale.unlink(missing_ok=True)
        write_json_atomic(run_dir / "run.json", run)
        return run
    finally:
        lock.release()


def _temporary_files(run_dir: Path) -> list[Path]:
    """Temporary files of the orchestrator's own atomic writes (never what a runner wrote under out/)."""
    return [path for path in run_dir.rglob(".*.tmp")
            if "out" not in path.relative_to(run_dir).parts and not path.is_symlink()]


def settle_all(results_root: Path) -> list[Path]:
    """Settle every RUN folder under ``results_root``; return those marked interrupted now."""
    marked = []
    root = Path(results_root)
    for run_json in sorted(root.glob("*/run.json")) if root.is_dir() else []:
        before = _status(run_json)
        after = settle(run_json.parent)
        if before == "running" and after and after.get("status") == "interrupted":
            marked.append(run_json.parent)
    return marked


def _status(run_json: Path) -> str | None:
    try:
        return json.loads(run_json.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def hold_model(folder: Path, what: str, progress: Callable[[str], None] = print) -> FileLock:
    """Take the lock of a model folder in the store, waiting (and saying so) while another process holds it."""
    lock = FileLock(folder.with_name(folder.name + ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"waiting: another orchestrate process is preparing {what} ({lock.lock_file})")
        lock.acquire()
    return lock


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
