"""A small evaluator of GitHub Actions expressions, for the tests that simulate the workflows' runs.

No maintained PyPI package evaluates GitHub's expression language (there are tree-sitter grammars that
only parse it), so this is written from GitHub's documentation ("Evaluate expressions in workflows and
actions"), for the syntax the workflows here use and a little more:

- literals: null, true, false, numbers (also hex and exponent), 'strings' ('' is a quote);
- contexts and property dereference: a.b, a['b'], the object filter a.*.b; a missing property is null;
  property names are case-insensitive;
- operators, loosest last: ! ; < <= > >= == != ; && ; || -- && and || return one of their operands;
- comparison: strings ignoring case; operands of different types are both coerced to numbers
  (null 0, true 1, false 0, a string parsed as a number with '' as 0, else NaN; arrays and objects NaN);
  NaN equals nothing; arrays and objects equal only themselves;
- falsy: false, 0, -0, '', null (and NaN); everything else is truthy;
- functions: contains, startsWith, endsWith, format, join, toJSON, fromJSON, hashFiles (through a
  callable the caller gives) and the status functions success, always, cancelled, failure (from the
  caller's status);
- templates: '${{ expr }}' inside a string; a string that is one expression keeps the value's type.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STATUS_FUNCTIONS = {"success", "always", "cancelled", "failure"}
TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,*])
""", re.VERBOSE)


class ExpressionError(ValueError):
    """An expression this evaluator cannot read."""


class Filtered(list):
    """The array an object filter (`*`) makes: a property of it is that property of each element."""


@dataclass
class Status:
    """What the status functions see: the results of the needed jobs (or earlier steps), and cancellation."""

    results: list[str] = field(default_factory=list)
    cancelled: bool = False


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match:
            raise ExpressionError(f"cannot read {text[position:]!r} in {text!r}")
        position = match.end()
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
    return found


class Parser:
    """Recursive descent over the tokens; the tree is nested tuples."""

    def __init__(self, text: str):
        self.text = text
        self.items = tokens(text)
        self.at = 0

    def parse(self):
        tree = self.either()
        if self.at != len(self.items):
            raise ExpressionError(f"unexpected {self.items[self.at][1]!r} in {self.text!r}")
        return tree

    def peek(self) -> str | None:
        return self.items[self.at][1] if self.at < len(self.items) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.items):
            raise ExpressionError(f"{self.text!r} ends too early")
        item = self.items[self.at]
        if expected is not None and item[1] != expected:
            raise ExpressionError(f"expected {expected!r}, found {item[1]!r} in {self.text!r}")
        self.at += 1
        return item

    def either(self):
        tree = self.both()
        while self.peek() == "||":
            self.take()
            tree = ("or", tree, self.both())
        return tree

    def both(self):
        tree = self.compare()
        while self.peek() == "&&":
            self.take()
            tree = ("and", tree, self.compare())
        return tree

    def compare(self):
        tree = self.unary()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            tree = ("compare", op, tree, self.unary())
        return tree

    def unary(self):
        if self.peek() == "!":
            self.take()
            return ("not", self.unary())
        return self.postfix()

    def postfix(self):
        tree = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                kind, value = self.take()
                if value == "*":
                    tree = ("filter", tree)
                elif kind == "name":
                    tree = ("get", tree, ("literal", value))
                else:
                    raise ExpressionError(f"expected a property name after '.', found {value!r} in {self.text!r}")
            else:
                index = self.either()
                self.take("]")
                tree = ("filter", tree) if index == ("star",) else ("get", tree, index)
        return tree

    def primary(self):
        kind, value = self.take()
        if kind == "number":
            return ("literal", float(int(value, 16)) if "x" in value.lower() else float(value))
        if kind == "string":
            return ("literal", value[1:-1].replace("''", "'"))
        if kind == "name":
            lowered = value.lower()
            if lowered in ("true", "false"):
                return ("literal", lowered == "true")
            if lowered == "null":
                return ("literal", None)
            if self.peek() == "(":
                self.take()
                args = []
                while self.peek() != ")":
                    args.append(self.either())
                    if self.peek() == ",":
                        self.take()
                    elif self.peek() != ")":
                        raise ExpressionError(f"expected ',' or ')' in {self.text!r}")
                self.take(")")
                return ("call", lowered, args)
            return ("context", lowered)
        if value == "(":
            tree = self.either()
            self.take(")")
            return tree
        if value == "*":
            return ("star",)
        raise ExpressionError(f"unexpected {value!r} in {self.text!r}")


def parse(text: str):
    return Parser(text).parse()


def calls(tree) -> set[str]:
    """The functions a tree calls."""
    if not isinstance(tree, tuple):
        return set()
    found = {tree[1]} if tree[0] == "call" else set()
    for part in tree[1:]:
        if isinstance(part, tuple):
            found |= calls(part)
        elif isinstance(part, list):
            for item in part:
                found |= calls(item)
    return found


# Coercion, as GitHub documents it.

def truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if isinstance(value, float) and (value == 0 or math.isnan(value)):
        return False
    return True


def number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return "Array" if isinstance(value, list) else "Object"


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    if type(a) is type(b):
        return a == b
    x, y = number(a), number(b)
    return not (math.isnan(x) or math.isnan(y)) and x == y


def order(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x, y = a.casefold(), b.casefold()
    else:
        x, y = number(a), number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _plain(value: Any) -> Any:
    """JSON data with every number a float, as expressions hold them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return {k: _plain(v) for k, v in value.items()}


def _json_of(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_json_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_of(v) for k, v in value.items()}
    return value


def _format(template: str, args: list) -> str:
    out, position = [], 0
    while position < len(template):
        if template.startswith("{{", position):
            out.append("{")
            position += 2
        elif template.startswith("}}", position):
            out.append("}")
            position += 2
        elif template[position] == "{":
            end = template.index("}", position)
            out.append(text_of(args[int(template[position + 1:end])]))
            position = end + 1
        else:
            out.append(template[position])
            position += 1
    return "".join(out)


@dataclass
class Evaluator:
    """Expressions evaluated over ``contexts`` (github, inputs, vars, needs, ... as plain JSON data)."""

    contexts: dict
    status: Status = field(default_factory=Status)
    hash_files: Callable[..., str] | None = None

    def evaluate(self, text: str) -> Any:
        return self.value(parse(text))

    def condition(self, text: str) -> bool:
        """An `if:` (with or without ${{ }}): success() && (...) unless it calls a status function itself."""
        stripped = text.strip()
        if stripped.startswith("${{") and stripped.endswith("}}"):
            stripped = stripped[3:-2]
        tree = parse(stripped)
        if not calls(tree) & STATUS_FUNCTIONS:
            tree = ("and", ("call", "success", []), tree)
        return truthy(self.value(tree))

    def template(self, text: Any) -> Any:
        """A workflow value with ${{ }} in it: one expression keeps its type; otherwise text."""
        if not isinstance(text, str) or "${{" not in text:
            return text
        parts = split_template(text)
        if len(parts) == 1 and parts[0][0] == "expr":
            return self.evaluate(parts[0][1])
        return "".join(text_of(self.evaluate(body)) if kind == "expr" else body for kind, body in parts)

    def value(self, tree) -> Any:
        kind = tree[0]
        if kind == "literal":
            return tree[1]
        if kind == "context":
            return self._get(self.contexts, tree[1])
        if kind == "get":
            return self._get(self.value(tree[1]), self.value(tree[2]))
        if kind == "filter":
            base = self.value(tree[1])
            if isinstance(base, list):
                return Filtered(base)
            if isinstance(base, dict):
                return Filtered(base.values())
            return Filtered()
        if kind == "not":
            return not truthy(self.value(tree[1]))
        if kind == "and":
            left = self.value(tree[1])
            return self.value(tree[2]) if truthy(left) else left
        if kind == "or":
            left = self.value(tree[1])
            return left if truthy(left) else self.value(tree[2])
        if kind == "compare":
            op, a, b = tree[1], self.value(tree[2]), self.value(tree[3])
            if op == "==":
                return equal(a, b)
            if op == "!=":
                return not equal(a, b)
            return order(op, a, b)
        if kind == "call":
            return self._call(tree[1], [self.value(a) for a in tree[2]])
        raise ExpressionError(f"cannot evaluate {tree!r}")

    def _get(self, base: Any, key: Any) -> Any:
        if isinstance(base, Filtered):
            found = Filtered()
            for item in base:
                value = self._get(item, key)
                if value is not None:
                    found.append(value)
            return found
        if isinstance(base, dict) and isinstance(key, str):
            for name, value in base.items():
                if name.casefold() == key.casefold():
                    return _plain(value)
            return None
        if isinstance(base, list) and isinstance(key, float) and key.is_integer() and 0 <= key < len(base):
            return _plain(base[int(key)])
        return None

    def _call(self, name: str, args: list) -> Any:
        if name == "contains":
            search, item = args
            if isinstance(search, list):
                return any(equal(element, item) for element in search)
            return text_of(item).casefold() in text_of(search).casefold()
        if name == "startswith":
            return text_of(args[0]).casefold().startswith(text_of(args[1]).casefold())
        if name == "endswith":
            return text_of(args[0]).casefold().endswith(text_of(args[1]).casefold())
        if name == "format":
            return _format(text_of(args[0]), args[1:])
        if name == "join":
            if not isinstance(args[0], list):
                return text_of(args[0])
            return (text_of(args[1]) if len(args) > 1 else ",").join(text_of(v) for v in args[0])
        if name == "tojson":
            return json.dumps(_json_of(args[0]), indent=2)
        if name == "fromjson":
            return _plain(json.loads(text_of(args[0])))
        if name == "hashfiles":
            if self.hash_files is None:
                raise ExpressionError("hashFiles needs the files: give the Evaluator a hash_files")
            return self.hash_files(*map(text_of, args))
        if name == "success":
            return not self.status.cancelled and all(r == "success" for r in self.status.results)
        if name == "failure":
            return any(r == "failure" for r in self.status.results)
        if name == "cancelled":
            return self.status.cancelled
        if name == "always":
            return True
        raise ExpressionError(f"unknown function {name}()")


def split_template(text: str) -> list[tuple[str, str]]:
    """A string as ('text', ...) and ('expr', ...) parts; a '}}' inside a quoted string does not end an expression."""
    parts, position = [], 0
    while True:
        start = text.find("${{", position)
        if start < 0:
            if position < len(text):
                parts.append(("text", text[position:]))
            break
        if start > position:
            parts.append(("text", text[position:start]))
        cursor, quoted = start + 3, False
        while True:
            if cursor >= len(text):
                raise ExpressionError(f"unclosed ${{{{ in {text!r}")
            if text[cursor] == "'":
                quoted = not quoted
            elif not quoted and text.startswith("}}", cursor):
                break
            cursor += 1
        parts.append(("expr", text[start + 3:cursor]))
        position = cursor + 2
    return parts
