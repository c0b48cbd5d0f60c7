"""A small JSON Schema checker: the keywords the job and options schemas use, nothing more.

Supported: type (one or a list), const, enum, required, properties, additionalProperties
(false or a schema), items, minimum, minLength, pattern, and if/then/else (``then`` applies
when the value has no problems against ``if``, else ``else``). An unknown keyword is ignored,
as JSON Schema does; the orchestrator validates with the full jsonschema library.
"""

from __future__ import annotations

import json
import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(schema: dict, value, path: str = "") -> list[str]:
    """Every violation of ``schema`` by ``value`` as 'path: message'."""
    where = path or "(top level)"
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_TYPES[t](value) for t in types):
            return [f"{where}: {json.dumps(value)} is not of type {' or '.join(types)}"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {json.dumps(value)} is not {json.dumps(schema['const'])}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {json.dumps(value)} is not one of {', '.join(map(json.dumps, schema['enum']))}"]
    found = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{where}: {key!r} is missing")
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                found += problems(props[key], item, sub)
            elif schema.get("additionalProperties") is False:
                found.append(f"{sub}: not allowed (allowed: {', '.join(props) or 'nothing'})")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += problems(schema["additionalProperties"], item, sub)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(schema["items"], item, f"{path}[{index}]")
    if _TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value} is less than the minimum {schema['minimum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{where}: shorter than {schema['minLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "if" in schema:
        branch = "then" if not problems(schema["if"], value, path) else "else"
        if branch in schema:
            found += problems(schema[branch], value, path)
    return found
