"""Load a MATRIX file: parse YAML with line numbers, validate it, return frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator import catalogue, schemas
from orchestrator.engines import ENGINES
from orchestrator.errors import InputError, Problem

DEFAULTS = {"warmup": 1, "repetitions": 5, "memory_limit": "4g", "timeout_s": 900.0}


@dataclass(frozen=True)
class EngineSpec:
    name: str
    options_json: str = "{}"  # canonical JSON, so the dataclass stays hashable

    @property
    def options(self) -> dict:
        return json.loads(self.options_json)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    formats: tuple[str, ...]


@dataclass(frozen=True)
class Workload:
    name: str
    prompt: str
    gen_tokens: int
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class Placement:
    policy: str = "reserve-one"
    cpus: str | None = None


@dataclass(frozen=True)
class Matrix:
    """A validated MATRIX."""

    source: str
    name: str
    engines: tuple[EngineSpec, ...]
    models: tuple[ModelSpec, ...]
    threads: tuple[int, ...]
    workloads: tuple[Workload, ...]
    warmup: int
    repetitions: int
    placement: Placement
    memory_limit: str
    timeout_s: float
    include: tuple[dict, ...] = field(default=())
    exclude: tuple[dict, ...] = field(default=())
    raw: str = field(default="", compare=False, repr=False)

    def memory_limit_bytes(self) -> int:
        return parse_size(self.memory_limit)


def parse_size(text: str) -> int:
    """'512m' -> bytes; suffixes k, m, g are powers of 1024."""
    text = text.strip().lower()
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "kmg" else text
    return int(float(number) * scale)


def _line_index(node, path=(), index=None) -> dict[tuple, int]:
    """Map every JSON path in a composed YAML node tree to its 1-based line."""
    if index is None:
        index = {}
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[path + (key.value,)] = key.start_mark.line + 1
            _line_index(value, path + (key.value,), index)
            index[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), index)
    return index


def _line_for(index: dict[tuple, int], path: tuple) -> int | None:
    while path not in index and path:
        path = path[:-1]
    return index.get(path)


def parse(text: str, source: str = "<matrix>") -> Matrix:
    """Parse and validate MATRIX text; raise InputError listing every problem."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise InputError(source, [Problem(source, "", line, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                          "YAML 1.1; see matrix.yaml for an example")]) from None
    if node is None or not isinstance(data, dict):
        raise InputError(source, [Problem(source, "", 1, "the MATRIX must be a YAML mapping",
                                          "keys version, engines, models, threads, workloads, ...")])
    index = _line_index(node)
    problems = []
    for error in schemas.validator("matrix").iter_errors(data):
        path = tuple(error.absolute_path)
        problems.append(Problem(source, schemas.json_path(path), _line_for(index, path), error.message,
                                _allowed(error)))
    try:
        problems += _semantic_problems(data, source, index)
    except (KeyError, TypeError, AttributeError):
        pass  # the structure is broken; the schema problems above say how
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise InputError(source, problems)
    return _build(data, source, text)


def load(path: str | Path) -> Matrix:
    """Read and validate the MATRIX file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(str(path), [Problem(str(path), "", None, f"cannot read the file: {exc.strerror}",
                                             "a readable MATRIX YAML file")]) from None
    return parse(text, str(path))


def _allowed(error) -> str | None:
    """A short 'what is allowed' hint from the failing schema keyword."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "enum":
        return ", ".join(map(str, error.validator_value))
    if error.validator == "const":
        return repr(error.validator_value)
    if error.validator == "additionalProperties":
        return ", ".join(sorted(schema.get("properties", {})))
    if error.validator == "pattern" and schema.get("description"):
        return schema["description"]
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "minItems", "minLength", "pattern"):
        return f"{error.validator} {error.validator_value}"
    if error.validator == "type":
        return f"type {error.validator_value}"
    return schema.get("description")


def _semantic_problems(data: dict, source: str, index) -> list[Problem]:
    """Checks a schema cannot express: known engines and models, formats some engine reads."""
    problems = []

    def add(path: tuple, message: str, allowed: str | None = None):
        problems.append(Problem(source, schemas.json_path(path), _line_for(index, path), message, allowed))

    known = catalogue.load()
    engine_names = [e["name"] for e in data["engines"]]
    variants = [(e["name"], _canonical(e.get("options", {}))) for e in data["engines"]]
    for i, name in enumerate(engine_names):
        if name not in ENGINES:
            add(("engines", i, "name"), f"unknown engine {name!r}", ", ".join(public_engines()))
        elif variants.index(variants[i]) != i:
            add(("engines", i, "name"), f"engine {name!r} is listed twice with the same options",
                "an engine more than once only with different options")
    for i, model in enumerate(data["models"]):
        entry = known.get(model["id"])
        if entry is None:
            add(("models", i, "id"), f"unknown model {model['id']!r}", ", ".join(sorted(known)))
            continue
        for j, fmt in enumerate(model["formats"]):
            if fmt not in entry.formats:
                add(("models", i, "formats", j), f"model {model['id']!r} has no format {fmt!r}",
                    ", ".join(entry.formats))
            elif not any(fmt in ENGINES[n].formats for n in engine_names if n in ENGINES):
                add(("models", i, "formats", j), f"no engine in this MATRIX reads format {fmt!r}",
                    "; ".join(f"{n}: {', '.join(sorted(ENGINES[n].formats))}" for n in engine_names if n in ENGINES))
    names = [w["name"] for w in data["workloads"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            add(("workloads", i, "name"), f"workload name {name!r} is used twice", "unique names")
    for i, workload in enumerate(data["workloads"]):
        for model in data["models"]:
            entry = known.get(model["id"])
            need = (workload.get("prompt_tokens") or 0) + workload["gen_tokens"]
            if entry is not None and entry.context_length and need > entry.context_length:
                add(("workloads", i), f"prompt_tokens + gen_tokens = {need} exceeds the context length "
                    f"{entry.context_length} of model {model['id']!r}", f"at most {entry.context_length} tokens")
    return problems


def public_engines() -> list[str]:
    return sorted(n for n, e in ENGINES.items() if not e.test_only)


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _build(data: dict, source: str, text: str) -> Matrix:
    placement = data.get("placement", {})
    return Matrix(
        source=source,
        name=data.get("name", Path(source).stem),
        engines=tuple(EngineSpec(e["name"], _canonical(e.get("options", {}))) for e in data["engines"]),
        models=tuple(ModelSpec(m["id"], tuple(m["formats"])) for m in data["models"]),
        threads=tuple(data["threads"]),
        workloads=tuple(Workload(w["name"], w["prompt"], w["gen_tokens"], w.get("prompt_tokens"))
                        for w in data["workloads"]),
        warmup=data.get("warmup", DEFAULTS["warmup"]),
        repetitions=data.get("repetitions", DEFAULTS["repetitions"]),
        placement=Placement(placement.get("policy", "reserve-one"), placement.get("cpus")),
        memory_limit=str(data.get("memory_limit", DEFAULTS["memory_limit"])),
        timeout_s=float(data.get("timeout_s", DEFAULTS["timeout_s"])),
        include=tuple(data.get("include", ())),
        exclude=tuple(data.get("exclude", ())),
        raw=text,
    )
