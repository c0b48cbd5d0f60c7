"""sha256 of files and folders beneath a root: regular files only, no link followed, nothing that can hang.

A model store may come from elsewhere (a bundle, a colleague's copy); its manifest names
the files to hash. A name that leads to ``/dev/zero``, a FIFO, ``/etc/shadow`` through a
link, or a folder full of links is refused with the reason instead of being read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from orchestrator.files import beneath
from orchestrator.files.beneath import Refused

MAX_TREE_FILES = 10_000  # files in one model folder format (an ONNX export has a handful)


def _open_regular(path: Path, root: Path) -> tuple[int, os.stat_result]:
    try:
        with beneath.folder_of(path, root) as (folder, name):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError as exc:
        raise Refused(str(path), beneath.open_problem(exc)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Refused(str(path), "it is not a regular file: only regular files are hashed")
    return fd, info


def file_sha256(path: Path, root: Path) -> str:
    """sha256 of the regular file ``path`` beneath ``root``."""
    fd, _ = _open_regular(Path(path), Path(root))
    with os.fdopen(fd, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_size(path: Path, root: Path) -> int:
    fd, info = _open_regular(Path(path), Path(root))
    os.close(fd)
    return info.st_size


def tree_files(folder: Path, root: Path) -> list[str]:
    """The regular files below ``folder`` (relative, '/'-separated, sorted); a link or special file is refused."""
    folder, found = Path(folder), []
    try:  # no link on the way from the root to the folder, nor the folder itself
        os.close(beneath.open_folder(root, beneath.parts_below(root, folder)))
    except OSError as exc:
        raise Refused(str(folder), beneath.open_problem(exc)) from None
    for here, subfolders, files in os.walk(folder, followlinks=False):
        for name in subfolders + files:
            path = os.path.join(here, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise Refused(path, "only regular files and folders may be in a model folder (a link or special "
                                    "file is there)")
        found += [os.path.relpath(os.path.join(here, f), folder).replace(os.sep, "/") for f in files]
        if len(found) > MAX_TREE_FILES:
            raise Refused(str(folder), f"more than {MAX_TREE_FILES} files below it")
    return sorted(found)


def tree_hashes(folder: Path, root: Path) -> dict[str, str]:
    """sha256 of every file below ``folder``, by relative path (sorted)."""
    return {rel: file_sha256(Path(folder) / rel, root) for rel in tree_files(folder, root)}


def tree_digest(members: dict[str, str]) -> str:
    """One sha256 over a folder's member hashes (path and hash of each, in order)."""
    digest = hashlib.sha256()
    for rel, member in members.items():
        digest.update(rel.encode() + b"\0" + member.encode())
    return digest.hexdigest()


def sha256_of(path: Path, root: Path) -> str:
    """sha256 of a file, or of a folder's files (path + content, sorted), beneath ``root``."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return tree_digest(tree_hashes(path, root))
    return file_sha256(path, root)


def size_of(path: Path, root: Path) -> int:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return sum(file_size(path / rel, root) for rel in tree_files(path, root))
    return file_size(path, root)
