"""The RUN folder's owner: one orchestrate process writes a RUN at a time, and a RUN whose owner is gone is seen.

A RUN folder holds ``.lock``, flock-ed by the process that runs it for the whole RUN
(the kernel drops the lock when that process dies, even by ``kill -9``), and
``owner.json`` (pid, host, start). A run.json that still says ``running`` while nobody
holds the lock belongs to a RUN that was interrupted; :func:`settle` marks it so.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import ResultError
from orchestrator.files import reading, writing
from orchestrator.files.locking import Lock
from orchestrator.files.writing import disk_full

RUN_LOCK = ".lock"


OWNER = "owner.json"


RESERVE = ".reserve"  # freed to write the final run.json when the results disk is full


RESERVE_BYTES = 256 * 1024


MAX_OWNER_BYTES = 64 * 1024  # owner.json holds a pid, a host name and a time


MAX_RUN_BYTES = 64 * 2**20  # run.json, as results.MAX_RECORD_BYTES


class RunOwner:
    """This process's hold on a RUN folder: the lock, owner.json and a little reserved space."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.lock = Lock(self.run_dir / RUN_LOCK, self.run_dir)
        if not self.lock.acquire():
            raise ResultError(f"{self.run_dir} is being written by another orchestrate process "
                              f"({describe_owner(self.run_dir)})")
        try:
            writing.write_json(self.run_dir / OWNER, {"pid": os.getpid(), "host": socket.gethostname(),
                                                      "started_at": _now()}, self.run_dir)
            writing.write_bytes(self.run_dir / RESERVE, b"\0" * RESERVE_BYTES, self.run_dir)
        except OSError as exc:
            self.release()
            if not disk_full(exc):
                raise
            raise ResultError(f"the results disk is full ({self.run_dir}: {exc.strerror}); nothing was run. "
                              "Free some space or give another --results folder") from None
        except BaseException:
            self.release()
            raise

    def write_run(self, record: dict) -> None:
        """Write run.json atomically; when the disk is full, give up the reserve and try once more."""
        try:
            writing.write_json(self.run_dir / "run.json", record, self.run_dir)
        except OSError as exc:
            if not disk_full(exc) or not (self.run_dir / RESERVE).exists():
                raise
            _remove(self.run_dir, RESERVE)
            writing.write_json(self.run_dir / "run.json", record, self.run_dir)

    def release(self) -> None:
        """Let go of the RUN folder (the RUN has ended, one way or another)."""
        _remove(self.run_dir, RESERVE)
        self.lock.release()


def _remove(run_dir: Path, name: str) -> None:
    """Remove a file of the RUN folder itself (a link is removed, never followed)."""
    try:
        os.unlink(Path(run_dir) / name)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        pass


def owner_alive(run_dir: Path) -> bool:
    """Whether some process holds the RUN folder's lock right now."""
    return Lock(Path(run_dir) / RUN_LOCK, run_dir).held_elsewhere()


def _document(path: Path, root: Path, limit: int):
    """A JSON document of the RUN folder, bounded and strict; None when it cannot be read."""
    try:
        return reading.parse_json(reading.read_regular(path, limit, root=root), str(path))
    except reading.Refused:
        return None


def describe_owner(run_dir: Path) -> str:
    owner = _document(Path(run_dir) / OWNER, Path(run_dir), MAX_OWNER_BYTES)
    if not isinstance(owner, dict) or not all(isinstance(owner.get(k), (str, int)) and not isinstance(owner.get(k), bool)
                                              for k in ("pid", "host", "started_at")):
        return "owner unknown"
    return reading.quote(f"pid {owner['pid']} on {owner['host']}, started {owner['started_at']}", 200)


def settle(run_dir: Path) -> dict | None:
    """Mark a RUN left ``running`` by a process that is gone as ``interrupted``; return run.json.

    Takes the RUN's lock first, so a live RUN is never touched and two readers never
    settle the same RUN. Leftover temporary files of interrupted atomic writes are removed.
    Returns None when the folder has no readable run.json.
    """
    run_dir = Path(run_dir)
    run = _document(run_dir / "run.json", run_dir, MAX_RUN_BYTES)
    if not isinstance(run, dict) or run.get("status") != "running" or not os.path.isfile(run_dir / OWNER) \
            or os.path.islink(run_dir / OWNER):
        return run if isinstance(run, dict) else None  # finished, or from a version that kept no lock
    lock = Lock(run_dir / RUN_LOCK, run_dir)
    if not lock.acquire():
        return run  # the RUN is alive
    try:
        run = _document(run_dir / "run.json", run_dir, MAX_RUN_BYTES)
        if not isinstance(run, dict) or run.get("status") != "running":
            return run if isinstance(run, dict) else None
        run["status"] = "interrupted"
        run["error"] = (f"the orchestrate process that ran this RUN ({describe_owner(run_dir)}) ended "
                        "before the RUN finished (killed?); cells without a record.json did not run")
        for stale in [*_temporary_files(run_dir), run_dir / RESERVE]:
            if stale.is_symlink() or stale.is_file():
                stale.unlink(missing_ok=True)
        writing.write_json(run_dir / "run.json", run, run_dir)
        return run
    finally:
        lock.release()


def _temporary_files(run_dir: Path) -> list[Path]:
    """Temporary files of the orchestrator's own atomic writes (never what a runner wrote under out/).

    Walked without following links: a link in the RUN folder never leads the search out of it.
    """
    found = []
    for folder, subfolders, files in os.walk(run_dir, followlinks=False):
        subfolders[:] = [d for d in subfolders if d != "out"]
        found += [Path(folder) / f for f in files if f.startswith(".") and f.endswith(".tmp")]
    return found


def settle_all(results_root: Path) -> list[Path]:
    """Settle every RUN folder under ``results_root``; return those marked interrupted now.

    Only real folders are looked at: a RUN folder that is a link is left alone.
    """
    marked = []
    root = Path(results_root)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else []
    except OSError:
        entries = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or not os.path.lexists(Path(entry.path) / "run.json"):
            continue
        run_dir = Path(entry.path)
        before = _document(run_dir / "run.json", run_dir, MAX_RUN_BYTES)
        after = settle(run_dir)
        if isinstance(before, dict) and before.get("status") == "running" and after and \
                after.get("status") == "interrupted":
            marked.append(run_dir)
    return marked


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
