"""Unpack a gzip-compressed tar archive from elsewhere within stated caps: regular files and folders only.

Why not ``tarfile.extractall``: its ``filter=`` (no links, nothing outside the target)
exists only from Python 3.11.4, and Debian 12's python3 is 3.11.2; and before 3.11.10 /
3.12.6 its pax header parsing is quadratic (CVE-2024-6232: a 64 KB header took 11 s on
this machine's 3.11.7). This reader walks the archive once, block by block, and accepts
the subset that ``tarfile`` writes for a bundle (USTAR headers, pax ``x`` records for
long names and large sizes, GNU ``L`` long names): a pax record list is parsed in linear
time and is at most ``Caps.header_bytes`` long. Every member name must be a relative
path of plain components (names.py); links, devices, FIFOs, sparse files and global pax
headers are refused. The caps on members, bytes per member, total bytes and header size
are checked before each member is written, and while its bytes are copied; on any refusal
the target is removed, so nothing half-unpacked stays.

``keep(name)`` decides per member: "keep" writes it, "skip" reads past it, "stop" ends the
walk there (``compare`` stops at the first model or image, which a bundle puts last).
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.files import beneath, names
from orchestrator.files.beneath import Refused

BLOCK = 512
REGULAR, FOLDER, PAX, LONG_NAME = (b"0", b"\0", b"7"), (b"5",), b"x", b"L"
_FORBIDDEN = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device", b"4": "a block device",
              b"6": "a FIFO", b"g": "a global pax header", b"K": "a long link name", b"S": "a sparse file"}


@dataclass(frozen=True)
class Caps:
    """What an archive may hold; each is checked before and while unpacking."""

    members: int  # files and folders
    member_bytes: int  # one file's size
    total_bytes: int  # every file's size together (what lands on disk)
    stream_bytes: int  # everything decompressed, skipped members included
    header_bytes: int = 4096  # one pax record list or GNU long name (a bundle needs under 300)
    name_chars: int = 255  # one member's path


class ArchiveRefused(Refused):
    """An archive was not unpacked (or not wholly): names the archive, the member and the cap or rule."""


def unpack(archive: Path, target: Path, caps: Caps, keep: Callable[[str], str] = lambda name: "keep") -> list[str]:
    """Unpack ``archive`` (tar.gz) into the new folder ``target``; return the names written, in order."""
    archive, target = Path(archive), Path(target)
    _check_regular(archive)
    try:
        target.mkdir(parents=True)
    except FileExistsError:
        raise ArchiveRefused(str(archive), f"{target} exists: an archive is unpacked into a new folder") from None
    try:
        with gzip.open(archive, "rb") as stream:
            return _Walk(archive, target, caps, keep, stream).run()
    except (OSError, EOFError, zlib.error) as exc:
        beneath.remove(target)
        raise ArchiveRefused(str(archive), f"not a readable tar.gz archive: {exc}") from None
    except BaseException:
        beneath.remove(target)
        raise


def _check_regular(archive: Path) -> None:
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang us
    except OSError as exc:
        raise ArchiveRefused(str(archive), beneath.open_problem(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArchiveRefused(str(archive), "it is not a regular file")
    finally:
        os.close(fd)


class _Walk:
    """One pass over the archive's blocks, writing what ``keep`` keeps."""

    def __init__(self, archive: Path, target: Path, caps: Caps, keep, stream):
        self.archive, self.target, self.caps, self.keep, self.stream = archive, target, caps, keep, stream
        self.read_bytes = self.members = self.total = 0
        self.seen: set[str] = set()
        self.written: list[str] = []

    def refuse(self, detail: str) -> ArchiveRefused:
        return ArchiveRefused(str(self.archive), detail)

    def read(self, size: int) -> bytes:
        self.read_bytes += size
        if self.read_bytes > self.caps.stream_bytes:
            raise self.refuse(f"it unpacks to more than {self.caps.stream_bytes} bytes (the cap)")
        data = self.stream.read(size)
        if len(data) != size:
            raise self.refuse("it holds no tar archive (it is empty)" if self.read_bytes == size and not data else
                              "it ends in the middle of a member (truncated)")
        return data

    def run(self) -> list[str]:
        try:
            self.blocks()
        except _Stop:
            pass
        return self.written

    def blocks(self) -> None:
        pending: dict[str, str] = {}  # what a pax or GNU header says of the next member
        while True:
            header = self.read(BLOCK)
            if header == bytes(BLOCK):
                return  # the end-of-archive marker (a second zero block may follow)
            kind, size, name = _parse_header(header, self.refuse)
            if kind in (PAX, LONG_NAME):
                if size > self.caps.header_bytes:
                    raise self.refuse(f"an extended header of {size} bytes (the cap is {self.caps.header_bytes})")
                data = self.read(_padded(size))[:size]
                pending.update(_pax_records(data, self.refuse) if kind == PAX else
                               {"path": data.rstrip(b"\0").decode("utf-8", "replace")})
                continue
            if kind in _FORBIDDEN:
                raise self.refuse(f"{names.shown(pending.get('path', name))} is {_FORBIDDEN[kind]}; only regular "
                                  "files and folders are unpacked")
            if kind not in REGULAR + FOLDER:
                raise self.refuse(f"{names.shown(pending.get('path', name))} has the unknown tar type {kind!r}")
            name, size = pending.get("path", name), _pax_size(pending, size, self.refuse)
            pending = {}
            self.member(name, kind in FOLDER, size)

    def member(self, name: str, folder: bool, size: int) -> None:
        self.members += 1
        if self.members > self.caps.members:
            raise self.refuse(f"more than {self.caps.members} members (the cap)")
        clean = names.relative(name.rstrip("/") if folder else name, self.caps.name_chars, self.refuse)
        if clean in self.seen:
            raise self.refuse(f"{names.shown(clean)} appears twice")
        self.seen.add(clean)
        decision = self.keep(clean)
        if decision == "stop":
            raise _Stop()
        if folder:
            if decision == "keep":
                beneath.ensure_folder(self.target, self.target / clean)
            return
        if size > self.caps.member_bytes:
            raise self.refuse(f"{names.shown(clean)} is {size} bytes (the cap for one member is "
                              f"{self.caps.member_bytes})")
        if decision != "keep":
            self.skip(_padded(size))
            return
        self.total += size
        if self.total > self.caps.total_bytes:
            raise self.refuse(f"its members add up to more than {self.caps.total_bytes} bytes (the cap)")
        self.copy(clean, size)
        self.written.append(clean)

    def skip(self, size: int) -> None:
        while size:
            step = min(size, 1 << 20)
            self.read(step)
            size -= step

    def copy(self, name: str, size: int) -> None:
        path = self.target / name
        beneath.ensure_folder(self.target, path.parent)
        with beneath.folder_of(path, self.target) as (folder, leaf):
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            left = size
            while left:
                chunk = self.read(min(left, 1 << 20))
                out.write(chunk)
                left -= len(chunk)
        self.skip(_padded(size) - size)


class _Stop(Exception):
    """``keep`` asked to stop here."""


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _number(field: bytes, what: str, refuse) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU): large sizes
        value = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            raise refuse(f"a negative {what}")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(48 <= c <= 55 for c in text):
        raise refuse(f"a {what} that is not an octal number: {text[:20]!r}")
    return int(text, 8)


def _parse_header(header: bytes, refuse) -> tuple[bytes, int, str]:
    """(type flag, size, USTAR name) of one 512-byte header; its checksum is verified."""
    stored = _number(header[148:156], "header checksum", refuse)
    if stored != sum(header[:148]) + 256 + sum(header[156:]):
        raise refuse("a member header whose checksum does not match (not a tar archive, or damaged)")
    kind, size = header[156:157], _number(header[124:136], "member size", refuse)
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] in (b"ustar\0", b"ustar ") and header[345:500].strip(b"\0"):
        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
    return kind, size, name.decode("utf-8", "replace")


def _pax_records(data: bytes, refuse) -> dict[str, str]:
    """The records of a pax header ('<length> <key>=<value>\\n' each), parsed in linear time."""
    records, at = {}, 0
    while at < len(data):
        space = data.find(b" ", at, at + 21)
        if space < 0 or not data[at:space].isdigit():
            raise refuse("a malformed pax header (a record without its length)")
        length = int(data[at:space])
        record = data[at:at + length]
        if length <= space - at + 1 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise refuse("a malformed pax header (a record of the wrong length)")
        key, _, value = record[space - at + 1:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        at += length
    return records


def _pax_size(pending: dict[str, str], size: int, refuse) -> int:
    if "size" not in pending:
        return size
    text = pending["size"]
    if not text.isdigit() or len(text) > 20:
        raise refuse(f"a pax size that is not a number: {names.shown(text)}")
    return int(text)
