"""Write files atomically beneath a root: readers see the old file or the whole new one, never a part.

The new bytes go to a temporary file made with ``O_EXCL | O_NOFOLLOW`` in the target's
folder, are flushed to disk, and replace the target by rename, which swaps a link for the
file instead of writing through it; then the folder itself is flushed, so the rename
survives a power cut. With ``root`` every folder from the root down is opened without
following a link (beneath.py), so a planted ``tables -> /elsewhere`` is refused, not
written through. A disk that is full raises the OSError itself (callers give up a reserve
or stop the RUN); anything else in the way (a directory where the file goes, a file where
a folder goes, a link) is Refused with the reason.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

from orchestrator.files import beneath
from orchestrator.files.beneath import Refused

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def disk_full(exc: BaseException) -> bool:
    """Whether an error means the file system has no room left."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def make_folder(path: Path | str) -> Path:
    """Make a folder the user named (and its parents); Refused, not a traceback, when a file is in the way."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        if disk_full(exc):
            raise
        reason = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else \
            beneath.open_problem(exc)
        raise Refused(os.fspath(path), f"this folder cannot be made: {reason}") from None
    return Path(path)


def write_bytes(path: Path | str, data: bytes, root: Path | str | None = None, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically; folders below ``root`` (default: the file's folder) are made."""
    path = os.fspath(path)
    if root is None:
        root = make_folder(os.path.dirname(os.path.normpath(path)) or ".")
    try:
        with beneath.folder_of(path, root, create=True) as (folder, name):
            _replace(folder, name, data, mode)
    except OSError as exc:
        if disk_full(exc):
            raise
        raise Refused(path, f"cannot write it: {beneath.open_problem(exc)}") from None


def _replace(folder: int, name: str, data: bytes, mode: int) -> None:
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                 dir_fd=folder)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=folder)
        except OSError:
            pass
        raise
    os.fsync(folder)  # the rename itself reaches the disk


def write_text(path: Path | str, text: str, root: Path | str | None = None) -> None:
    """Write UTF-8 text atomically (see write_bytes)."""
    write_bytes(path, text.encode("utf-8"), root)


def write_json(path: Path | str, document, root: Path | str | None = None) -> None:
    """Write strict JSON (no NaN or infinity) atomically (see write_bytes)."""
    write_text(path, json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n", root)
