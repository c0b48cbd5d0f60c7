"""ENGINE options: each adapter declares them as a JSON Schema; one check serves the MATRIX and the job.

An adapter's ``options`` is built with :func:`declare` from JSON Schema properties (type or
enum, default, description). ``orchestrate validate`` reports an unknown or mistyped option
with the allowed ones, ``orchestrate engines`` prints the same declaration, and the job a
runner reads carries only options that passed :func:`problems`. The declaration also
travels into the IMAGE (images.py), where a runner may check its job against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UsageError

_JSON_TYPES = {"boolean": "a boolean", "string": "a string", "integer": "an integer", "number": "a number",
               "object": "an object", "array": "a list", "null": "null"}


@dataclass(frozen=True)
class OptionProblem:
    """One problem with an engine's options: which option (None: the whole object), what, what is allowed."""

    option: str | None
    message: str
    allowed: str


def declare(properties: Mapping[str, Mapping[str, Any]]) -> dict:
    """The JSON Schema of an engine's options object: exactly these properties, none other."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "additionalProperties": False, "properties": {k: dict(v) for k, v in properties.items()}}


def kind(prop: Mapping[str, Any]) -> str:
    """What an option takes, in words: 'a boolean', 'one of f16, f32'."""
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) if not isinstance(v, str) else v for v in prop["enum"])
    types = prop.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    return " or ".join(_JSON_TYPES.get(t, t) for t in types) or "any value"


def allowed(schema: Mapping[str, Any]) -> str:
    """Every declared option with what it takes, for error messages."""
    props = schema.get("properties", {})
    if not props:
        return "no options: this engine takes none"
    return "; ".join(f"{name} ({kind(prop)})" for name, prop in props.items())


def describe(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(option, 'takes ..., default ...: meaning') for every declared option, for `orchestrate engines`."""
    rows = []
    for name, prop in schema.get("properties", {}).items():
        default = f", default {json.dumps(prop['default'])}" if "default" in prop else ""
        rows.append((name, f"{kind(prop)}{default}: {prop.get('description', '')}".rstrip(": ")))
    return rows


def _type_name(value: Any) -> str:
    for name, test in (("a boolean", lambda v: isinstance(v, bool)), ("an integer", lambda v: isinstance(v, int)),
                       ("a number", lambda v: isinstance(v, float)), ("a string", lambda v: isinstance(v, str)),
                       ("null", lambda v: v is None), ("a list", lambda v: isinstance(v, list)),
                       ("an object", lambda v: isinstance(v, dict))):
        if test(value):
            return name
    return type(value).__name__


def problems(schema: Mapping[str, Any], options: Any) -> list[OptionProblem]:
    """Every problem of ``options`` against an engine's declaration, one per option, sorted by option."""
    everything = allowed(schema)
    if not isinstance(options, dict):
        return [OptionProblem(None, f"options must be a mapping, got {_type_name(options)}", everything)]
    props = schema.get("properties", {})
    found = []
    for name in sorted(options):
        value = options[name]
        if name not in props:
            found.append(OptionProblem(name, f"unknown option {name!r}", everything))
            continue
        if not _valid(props[name], value):
            found.append(OptionProblem(name, f"option {name!r} must be {kind(props[name])}, got "
                                             f"{json.dumps(value)} ({_type_name(value)})", kind(props[name])))
    return found


def _valid(prop: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` fits one option's JSON Schema (jsonschema-rs: compiled, and quick to import)."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(dict(prop)).is_valid(value)


def check(engine_name: str, schema: Mapping[str, Any], options: Any) -> None:
    """Raise UsageError naming every problem when ``options`` do not fit the declaration."""
    found = problems(schema, options)
    if found:
        raise UsageError(f"engine {engine_name}: " + "; ".join(f"{p.message} (allowed: {p.allowed})" for p in found))
