"""Open folders beneath a root one component at a time, never following a link out of it.

A RUN folder, an unpacked bundle or a model folder may hold symbolic links planted by
whoever made it (``tables -> /etc``, ``cells -> /home/you``). ``O_NOFOLLOW`` guards only
the last component of a path, so every folder between the root and a file is opened
here relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``: a link, or a
file where a folder should be, is refused wherever it sits below the root. The root
itself is the caller's (a user may keep results behind a link of their own choosing).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import OrchestratorError

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
BELOW_FLAGS = FOLDER_FLAGS | os.O_NOFOLLOW


class Refused(OrchestratorError):
    """A file was not read, written or parsed, because it is unsafe or malformed; says where and why."""

    exit_code = 5

    def __init__(self, where: str, detail: str):
        self.where = where
        self.detail = detail
        super().__init__(f"{where}: {detail}")

    def __reduce__(self):  # raised in a report's worker process, it travels back pickled
        return type(self), (self.where, self.detail)


def parts_below(root: str | Path, path: str | Path) -> list[str]:
    """The components of ``path`` below ``root`` (lexically; '..' and absolute escapes refused)."""
    root, path = os.path.normpath(os.fspath(root)), os.path.normpath(os.fspath(path))
    rel = os.path.relpath(path, root)
    if rel == ".":
        return []
    parts = rel.split(os.sep)
    if os.path.isabs(rel) or parts[0] == "..":
        raise Refused(str(path), f"it is not inside {root}")
    return parts


def open_problem(exc: OSError) -> str:
    """A plain-words reason for an OSError from opening a path beneath a root."""
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link (or a folder on its way is); links are never followed out of a folder"
    if exc.errno == errno.ENOTDIR:
        return "a folder on its way is a symbolic link or a file; links are never followed out of a folder"
    if exc.errno == errno.ENOENT:
        return "it does not exist"
    if exc.errno == errno.EISDIR:
        return "it is a directory, not a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return f"cannot open it: {exc.strerror}"


def open_folder(root: str | Path, parts: list[str], create: bool = False) -> int:
    """A descriptor of ``root/parts...``; each part opened without following links (made first with ``create``).

    Raises OSError (callers turn it into their own error with ``open_problem``).
    """
    fd = os.open(os.fspath(root), FOLDER_FLAGS)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            below = os.open(part, BELOW_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = below
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def folder_of(path: str | Path, root: str | Path | None, create: bool = False) -> Iterator[tuple[int, str]]:
    """(descriptor of the folder holding ``path``, the file's name), every folder below ``root`` opened
    without following a link; when ``root`` is None, the file's own folder may not be a link either."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.normpath(path))
    if not name or name in (".", ".."):
        raise Refused(path, "it names no file")
    if root is None:  # the file's own folder is the root, and may not be a link itself
        parent, last = os.path.split(folder)
        base, parts = (parent or "."), ([last] if last and last not in (".", "..") else [])
    else:
        base, parts = root, parts_below(root, folder or ".")
    try:
        fd = open_folder(base, parts, create)
    except OSError as exc:
        raise Refused(path, open_problem(exc)) from None
    try:
        yield fd, name
    finally:
        os.close(fd)


def ensure_folder(root: str | Path, path: str | Path) -> Path:
    """Make ``path`` and the folders above it down from ``root``, refusing a link or a file on the way."""
    try:
        os.close(open_folder(root, parts_below(root, path), create=True))
    except OSError as exc:
        raise Refused(os.fspath(path), f"cannot make this folder: {open_problem(exc)}") from None
    return Path(path)


def remove(path: str | Path) -> None:
    """Remove a file, a folder tree or a link (the link itself: nothing it points to is touched)."""
    path = os.fspath(path)
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)  # by descriptors: it never follows a link inside the tree
