"""Read files another party may have planted: regular files only, bounded, never followed out of their root.

A CELL's container writes its output folder as it likes, a colleague's RUN folder or
bundle holds what they put there, and the orchestrator reads them on the host (often as
root). So such a file is opened beneath its root without following any link
(beneath.py), must be a regular file with one link (not a FIFO, device, socket or
directory, not a hard link to something else), is read up to a stated size, and is
parsed as strict JSON within stated limits (``read_json`` adds a schema check).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

from orchestrator import schemas
from orchestrator.files import beneath
from orchestrator.files.beneath import Refused

MAX_JSON_DEPTH = 32  # nesting of arrays/objects; a RESULT needs 5, a record 7
MAX_INT_DIGITS = 19  # anything longer is beyond int64 and no measured quantity
MAX_STRING_CHARS = 65536  # any single string in a JSON file read back
# Any fractional number (seconds, rates, GHz, perplexity): a week is 6e5 s, no rate or size held
# as a float comes near 1e12, and a sum of a million such values stays far from overflow (1e308
# in a CPU time made a sum infinite, and the JSON writer then refused the TABLE).
MAX_FLOAT = 1e12
QUOTE_CHARS = 200  # how much of a refused value is quoted in a message

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def read_regular(path: Path | str, limit: int, *, root: Path | str | None = None, contained: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), or Refused saying why.

    With ``root``, every folder from ``root`` down to the file is opened without following
    a link (beneath.py); with ``contained``, the file's own folder is the root. In both
    cases the file itself may not be a link or have other hard links. Without either, the
    path is the user's own choice and is followed as given.
    """
    path = os.fspath(path)
    guarded = contained or root is not None
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if guarded else 0)  # NONBLOCK: no FIFO hangs
    try:
        if guarded:
            with beneath.folder_of(path, root) as (folder_fd, name):
                fd = os.open(name, flags, dir_fd=folder_fd)
        else:
            fd = os.open(path, flags)
    except OSError as exc:
        raise Refused(str(path), beneath.open_problem(exc)) from None
    try:
        return read_open(fd, path, limit, guarded)
    finally:
        os.close(fd)


def read_open(fd: int, path: str, limit: int, guarded: bool = True) -> bytes:
    """The bytes of an open descriptor that must be a regular file of at most ``limit`` bytes."""
    try:
        info = os.fstat(fd)
        kind = stat.S_IFMT(info.st_mode)
        if kind != stat.S_IFREG:
            raise Refused(str(path), f"it is {_KINDS.get(kind, 'not a regular file')}, not a regular file")
        if guarded and info.st_nlink > 1:
            raise Refused(str(path), f"it has {info.st_nlink} hard links: it may be another file's contents")
        if info.st_size > limit:
            raise Refused(str(path), f"it is {info.st_size} bytes, more than the limit of {limit} bytes")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise Refused(str(path), f"it grew past the limit of {limit} bytes while it was read")
        return b"".join(chunks)
    except OSError as exc:
        raise Refused(str(path), f"cannot read it: {exc.strerror}") from None


def parse_json(raw: bytes, what: str):
    """Strict JSON from ``raw`` (UTF-8; no NaN/Infinity; bounded depth, integers and strings), or Refused."""
    fast = _parse_plainly_safe(raw)
    if fast is not _UNSURE:
        return fast
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise Refused(what, f"not UTF-8: byte 0x{raw[exc.start]:02x} at line {line} (offset {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int,
                              object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise Refused(what, f"nested too deeply to parse (the limit is {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError; so are the hooks' refusals
        raise Refused(what, f"not strict JSON: {quote(str(exc))}") from None
    problem = shape_problem(document)
    if problem:
        raise Refused(what, problem)
    return document


def shape_problem(document) -> str | None:
    """What makes a parsed JSON document too deep, or holds a too-long string or non-finite number."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return f"nested deeper than {MAX_JSON_DEPTH} levels"
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in children:
                if isinstance(key, str) and (len(key) > MAX_STRING_CHARS or not _encodable(key)):
                    return f"a key of {len(key)} characters or with an unpaired surrogate: {quote(key, 60)!r}"
                stack.append((value, depth + 1))
        elif isinstance(node, str) and len(node) > MAX_STRING_CHARS:
            return f"a string of {len(node)} characters (the limit is {MAX_STRING_CHARS}): {quote(node, 60)!r}"
        elif isinstance(node, str) and not _encodable(node):
            return f"a string with an unpaired surrogate escape, which no UTF-8 file can hold: {quote(node, 60)!r}"
        elif isinstance(node, float) and not math.isfinite(node):
            return f"a non-finite number ({node})"
        elif isinstance(node, float) and abs(node) > MAX_FLOAT:
            return f"the number {node:g} is beyond the {MAX_FLOAT:g} any measured value stays within"
        elif isinstance(node, int) and not isinstance(node, bool) and len(str(abs(node))) > MAX_INT_DIGITS:
            return f"an integer of more than {MAX_INT_DIGITS} digits"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (NaN and Infinity are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {quote(text, 40)} is out of range (it reads as {value})")
    if abs(value) > MAX_FLOAT:
        raise ValueError(f"the number {quote(text, 40)} is beyond the {MAX_FLOAT:g} any measured value stays within")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_duplicates(pairs: list) -> dict:
    document = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {quote(key, 60)!r} appears twice in one object")
        document[key] = value
    return document


# --- Speed (issue 15) ---------------------------------------------------------------
# The strict parse above calls a Python hook for every number and walks every value:
# about 8 ms for a record of 5 x 64 tokens, minutes for 10,000 records. This fast path
# accepts exactly the documents the strict path accepts, with the same result. orjson
# parses (RFC 8259 strictly: no NaN/Infinity, no BOM, integers within 64 bits, about 6x
# faster than json); then the same limits are checked (finite floats within MAX_FLOAT, integers of at most
# MAX_INT_DIGITS digits, strings and keys of at most MAX_STRING_CHARS, depth at most
# MAX_JSON_DEPTH), and duplicate keys are ruled out by counting: every key is a string
# followed by a colon, so the text holds at least as many `"\s*:` as the document has
# keys, and exactly as many only when no key was dropped as a duplicate. Anything it is
# not sure of goes the strict way, which gives the reason. It reads the bytes as they are:
# decoding them first and letting orjson encode them again cost a tenth of the time.
_UNSURE = object()
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SPACED_KEY_END = re.compile(rb'"\s+:')
_INT_LIMIT = 10 ** MAX_INT_DIGITS  # an integer of more than MAX_INT_DIGITS digits is >= this


def _parse_plainly_safe(raw: bytes | str):
    """The parsed document when it is plainly within every limit, else ``_UNSURE``.

    Keep in step with ``shape_problem`` and the hooks: every rule they apply is checked
    here too, or the document is sent the strict way (tests/unit/test_safefile_fast.py).
    Bytes are parsed as they are (orjson refuses bytes that are not UTF-8).
    """
    import orjson

    raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _SURROGATE_ESCAPE.search(raw) or raw.startswith(b"\xef\xbb\xbf"):
        return _UNSURE  # a \\uD800-\\uDFFF escape may make an unpaired surrogate; json refuses a BOM
    try:
        document = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError):
        return _UNSURE
    keys = [0]
    # A text of no more than MAX_STRING_CHARS bytes holds no string or key longer than that.
    long_strings = len(raw) > MAX_STRING_CHARS
    if not _within_limits([document], 0, keys, long_strings):  # wrapped: the top level may be a scalar
        return _UNSURE
    # Every key is a string closed by '"', then optional whitespace, then ':'. Count those ends
    # (where none has whitespace before its colon, each is the two bytes '":').
    if _SPACED_KEY_END.search(raw):
        return _UNSURE
    return document if raw.count(b'":') == keys[0] else _UNSURE


def _within_limits(node, depth: int, keys: list[int], long_strings: bool) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if type(node) is dict:
        keys[0] += len(node)
        if long_strings and node and max(map(len, node)) > MAX_STRING_CHARS:
            return False
        values = node.values()
    else:
        values = node
        try:  # a list of plain numbers (token ids, latencies): checked in C
            if node and math.isfinite(sum(node)) and -MAX_FLOAT <= min(node) and max(node) <= MAX_FLOAT:
                return True  # a finite sum means every number is finite
        except (TypeError, OverflowError):
            pass  # strings, nulls, containers or huge integers: value by value
    for value in values:
        kind = type(value)
        if kind is float:
            if not (math.isfinite(value) and -MAX_FLOAT <= value <= MAX_FLOAT):
                return False
        elif kind is int:
            if not -_INT_LIMIT < value < _INT_LIMIT:
                return False
        elif kind is str:
            if long_strings and len(value) > MAX_STRING_CHARS:
                return False
        elif kind is dict or kind is list:
            if not _within_limits(value, depth + 1, keys, long_strings):
                return False
    return True


def read_json(path: Path | str, limit: int, schema: str, *, root: Path | str | None = None,
              contained: bool = False):
    """A JSON file from elsewhere: read bounded (read_regular), parsed strictly (parse_json) and checked against
    ``schemas/<schema>.schema.json``; Refused (exit 5) names the file and the first problems."""
    document = parse_json(read_regular(path, limit, root=root, contained=contained), str(path))
    found = schemas.problems(schema, document)
    if found:
        detail = "; ".join(f"{where or '(top level)'}: {quote(message, 160)}" for where, message in found[:3])
        raise Refused(str(path), f"does not match schemas/{schema}.schema.json: {detail}")
    return document

