"""Load YAML the user gave (a MATRIX, the catalogue) within stated bounds, with a line for every problem.

PyYAML's safe loader still lets a few hundred bytes of nested aliases expand into
gigabytes, keeps the last of two duplicate keys silently, builds dates, sets and bytes
that JSON cannot hold, and reports encoding faults by character offset. This module
composes the node graph once (aliases stay shared, so composing is cheap), checks it
against the limits below, and only then builds plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.errors import InputError, Problem
from orchestrator.files import reading

MAX_BYTES = 1 << 20  # 1 MiB; the largest MATRIX in matrices/ is under 4 KiB
MAX_NODES = 100_000  # YAML nodes after expanding every alias (the default MATRIX has about 150)
MAX_DEPTH = 32  # nesting of mappings and sequences (a MATRIX needs 5, engine options a few more)
MAX_INT_DIGITS = 19  # an integer beyond int64 is refused before Python builds it
MAX_REPORTED = 20  # problems of one kind listed before the rest are counted

_JSON_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_MERGE = "tag:yaml.org,2002:merge"
# The characters YAML forbids (PyYAML's own NON_PRINTABLE), so they are reported by line.
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_NOT_JSON_HINT = {
    "timestamp": "YAML reads this as a date; quote it to keep it a string",
    "binary": "binary data has no place in a MATRIX",
    "set": "use a list", "omap": "use a mapping", "pairs": "use a mapping",
}


@dataclass(frozen=True)
class Document:
    """Plain data (dicts, lists, str, int, float, bool, None) and the line of every JSON path in it."""

    data: object
    lines: dict = field(default_factory=dict, compare=False)

    def line(self, path: tuple) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def read(path: str | Path, what: str = "a YAML file") -> bytes:
    """The bytes of a YAML file the user named: a regular file of at most MAX_BYTES."""
    try:
        return reading.read_regular(Path(path), MAX_BYTES)
    except reading.Refused as exc:
        raise InputError(str(path), [Problem(str(path), "", None, f"cannot read the file: {exc.detail}",
                                             f"{what} of at most {MAX_BYTES // 1024} KiB")]) from None


def load(raw: bytes | str, source: str) -> Document:
    """Parse YAML text or bytes into a Document; InputError (exit 2) listing every problem found."""
    text = _decode(raw, source)
    problems = _character_problems(text, source)
    if problems:
        raise InputError(source, problems)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(source, [Problem(source, "", mark.line + 1 if mark else None,
                                          f"not valid YAML: {_yaml_problem(exc)}",
                                          "YAML 1.1; see matrix.yaml for an example")]) from None
    except RecursionError:
        raise InputError(source, [Problem(source, "", None, "nested too deeply to parse",
                                          f"at most {MAX_DEPTH} levels")]) from None
    if node is None:
        return Document(None, {(): 1})
    problems = _Checker(source).check(node)
    if problems:
        raise InputError(source, problems)
    data = yaml.SafeLoader("").construct_document(node)
    return Document(data, _lines(node))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's context and problem, e.g. 'expected a single document in the stream, but found another document'."""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(exc)
    return reading.quote(text, 300)


def _decode(raw: bytes | str, source: str) -> str:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise InputError(source, [Problem(source, "", None, f"the file is {size} bytes, more than the limit of "
                                          f"{MAX_BYTES} bytes", f"at most {MAX_BYTES // 1024} KiB")])
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(source, [Problem(source, "", line, f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} at "
                                          f"line {line}, column {column}", "UTF-8 text")]) from None


def _character_problems(text: str, source: str) -> list[Problem]:
    problems = []
    for match in _NON_PRINTABLE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        char = match.group()
        name = "a NUL byte" if char == "\0" else f"the control character U+{ord(char):04X}"
        if 0xD800 <= ord(char) <= 0xDFFF:
            name = f"an unpaired surrogate U+{ord(char):04X}"
        problems.append(Problem(source, "", line, f"{name} at line {line}, column {column}",
                                "printable text: YAML allows no control characters but tab and newline"))
        if len(problems) == MAX_REPORTED:
            break
    return problems


class _Checker:
    """Walks a composed node graph once per node: size after alias expansion, depth, keys, tags."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.sizes: dict[int, int] = {}  # expanded node count below a node, by id
        self.depths: dict[int, int] = {}  # expanded depth below a node, by id
        self.open: set[int] = set()

    def add(self, node, message: str, allowed: str | None = None) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(Problem(self.source, "", node.start_mark.line + 1, message, allowed))

    def check(self, root) -> list[Problem]:
        size, depth = self.walk(root)
        if not self.problems and size > MAX_NODES:
            self.add(root, f"the document expands to {size} nodes once its aliases (*name) are expanded; "
                     f"the limit is {MAX_NODES}", "fewer or shallower aliases, or write the values out")
        if not self.problems and depth > MAX_DEPTH:
            self.add(root, f"the document is nested {depth} levels deep", f"at most {MAX_DEPTH} levels")
        return self.problems

    def walk(self, node) -> tuple[int, int]:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key], self.depths[key]
        if key in self.open:
            self.add(node, "an alias refers to a node that contains it (a recursive alias)", "aliases without cycles")
            return 1, 1
        self.open.add(key)
        size, depth = 1, 1
        if isinstance(node, yaml.ScalarNode):
            self.scalar(node)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [v for _, v in node.value]
            if isinstance(node, yaml.MappingNode):
                self.keys(node)
            elif node.tag not in _JSON_TAGS:
                self.tag(node)
            for child in children:
                child_size, child_depth = self.walk(child)
                size = min(size + child_size, MAX_NODES + 1)
                depth = max(depth, child_depth + 1)
                if depth > MAX_DEPTH + 1 or size > MAX_NODES:
                    break  # over a limit: stop counting, check() reports it
        self.open.discard(key)
        self.sizes[key], self.depths[key] = size, depth
        return size, depth

    def scalar(self, node) -> None:
        if node.tag not in _JSON_TAGS:
            self.tag(node)
        elif node.tag.endswith(":int") and len(node.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
            self.add(node, f"an integer of {len(node.value)} digits", f"at most {MAX_INT_DIGITS} digits")

    def tag(self, node) -> None:
        short = node.tag.rsplit(":", 1)[-1]
        value = reading.quote(str(node.value), 40) if isinstance(node, yaml.ScalarNode) else "(a list or mapping)"
        self.add(node, f"the value {value!r} is read as YAML type {node.tag!r}, "
                 f"which JSON cannot hold", _NOT_JSON_HINT.get(short, "strings, numbers, booleans, null, lists and "
                                                                   "mappings"))

    def keys(self, node) -> None:
        if node.tag not in _JSON_TAGS:
            self.tag(node)
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if key.tag == _MERGE:
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                value = key.value if isinstance(key, yaml.ScalarNode) else "(a list or mapping)"
                self.add(key, f"the key {reading.quote(str(value), 40)!r} is not a string "
                         f"(YAML reads it as {key.tag.rsplit(':', 1)[-1]})", "keys that are strings; quote it")
                continue
            line = key.start_mark.line + 1
            if key.value in seen:
                self.add(key, f"the key {reading.quote(key.value, 40)!r} appears twice in one mapping: at line "
                         f"{seen[key.value]} and line {line}", "each key once per mapping")
            else:
                seen[key.value] = line


def _lines(node, path: tuple = (), index: dict | None = None) -> dict[tuple, int]:
    """Map every JSON path in a checked node tree to its 1-based line (keys at their own line)."""
    if index is None:
        index = {}
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == _MERGE:
                continue
            _lines(value, path + (key.value,), index)
            index[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), index)
    return index
