"""An exclusive lock on a file beneath a root, that neither truncates nor follows a link.

filelock (and most lock helpers) open the lock file with ``O_TRUNC`` and follow links: a
RUN folder whose ``.lock`` is a link to any file the user can write would empty that
file. Here the lock file is opened beneath its root (beneath.py) with ``O_CREAT |
O_NOFOLLOW`` and no ``O_TRUNC``, must be a regular file, and is held with ``flock``: the
kernel drops the lock when the holding process dies, even by ``kill -9``. Nothing is
ever written to it.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path

from orchestrator.files import beneath
from orchestrator.files.beneath import Refused

OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs


class Lock:
    """``flock`` on ``path`` (made if absent); folders below ``root`` are never followed through a link."""

    def __init__(self, path: Path | str, root: Path | str | None = None):
        self.path = Path(path)
        self.root = root
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock: True when taken; False when another process holds it and ``wait`` is False."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock (the file stays, as lock files do)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock right now (False when the lock file does not exist)."""
        if not os.path.lexists(self.path):
            return False
        if not self.acquire():
            return True
        self.release()
        return False

    def _open(self) -> int:
        try:
            with beneath.folder_of(self.path, self.root) as (folder, name):
                fd = os.open(name, OPEN_FLAGS, 0o644, dir_fd=folder)
        except OSError as exc:
            raise Refused(str(self.path), f"cannot take the lock: {beneath.open_problem(exc)}") from None
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            os.close(fd)
            raise Refused(str(self.path), "cannot take the lock: it is not a regular file")
        return fd


def hold(folder: Path, what: str, progress: Callable[[str], None] = print) -> Lock:
    """Take the lock ``<folder>.lock`` beside a folder (a model or text in the store), waiting while another
    process holds it, and saying so."""
    lock = Lock(folder.with_name(folder.name + ".lock"), folder.parent)
    if not lock.acquire():
        progress(f"waiting: another orchestrate process is preparing {what} ({lock.path})")
        lock.acquire(wait=True)
    return lock
