"""Load the JSON Schemas under ``schemas/`` and validate documents against them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import ResultError

if TYPE_CHECKING:  # jsonschema is imported where a document fails: the compiled check decides first
    import jsonschema
    from referencing import Registry

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def _registry() -> Registry:
    """Every schema under schemas/, so one may $ref another by file name."""
    from referencing import Registry, Resource

    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    """The validator for ``schemas/<name>.schema.json``."""
    import jsonschema

    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def json_path(parts) -> str:
    """Render a jsonschema error path like ``engines[0].options``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems(name: str, document) -> list[tuple[str, str]]:
    """Every schema violation of ``document`` as (path, message), sorted by path."""
    if passes(name, document):
        return []
    found = []
    for error in validator(name).iter_errors(document):
        found.append((json_path(error.absolute_path), error.message))
    return sorted(found)


MESSAGE_CHARS = 300  # of one schema message: jsonschema quotes the whole offending value


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else f"{text[:MESSAGE_CHARS]}... [{len(text) - MESSAGE_CHARS} more characters]"


def check(name: str, document, what: str) -> None:
    """Raise ResultError naming ``what`` if ``document`` violates schema ``name``."""
    found = problems(name, document)
    if found:
        detail = "; ".join(f"{p or '(top level)'}: {_cut(m)}" for p, m in found[:5])
        raise ResultError(f"{what} does not match schemas/{name}.schema.json: {detail}")


# --- Speed (issue 15) ---------------------------------------------------------------
# jsonschema descends into every token id and latency (through $ref): about 24 ms per
# record, so 10,000 records took minutes. jsonschema-rs (a compiled, complete 2020-12
# implementation) answers "valid" in well under 0.1 ms; only when it says "invalid" does
# jsonschema run, so every error message is still jsonschema's own.


@cache
def _compiled(name: str):
    """A jsonschema-rs validator for ``schemas/<name>.schema.json`` ($refs resolved locally)."""
    import jsonschema_rs

    by_id = {}
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        by_id[schema["$id"]] = schema

    def retrieve(uri: str):
        if uri not in by_id:
            raise KeyError(f"{uri} is not a schema under {SCHEMA_DIR}")  # never fetched from the network
        return by_id[uri]

    return jsonschema_rs.validator_for(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")),
                                       retriever=retrieve)


def passes(name: str, document) -> bool:
    """True when the compiled validator accepts ``document``; False means: ask jsonschema for the errors."""
    try:
        return _compiled(name).is_valid(document)
    except Exception:  # noqa: BLE001 - any trouble on the fast side: jsonschema decides
        return False
