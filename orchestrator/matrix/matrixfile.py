"""Load a MATRIX file: parse YAML with line numbers, validate it, return frozen dataclasses."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator import schemas
from orchestrator.engines import ENGINES
from orchestrator.engines import options as engine_options
from orchestrator.errors import InputError, Problem
from orchestrator.files import yamlsafe
from orchestrator.files.reading import quote
from orchestrator.matrix import bounds
from orchestrator.models import catalogue, texts

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
    """A generation workload (prompt, gen_tokens) or a perplexity one (text, context, stride)."""

    name: str
    prompt: str | None
    gen_tokens: int | None
    prompt_tokens: int | None = None
    kind: str = "generate"
    text: str | None = None  # perplexity: an evaluation text of catalogue/texts.yaml
    context: int | None = None  # perplexity: ids per window
    stride: int | None = None  # perplexity: how far each window starts after the previous one

    @property
    def is_perplexity(self) -> bool:
        return self.kind == "perplexity"

    def to_json(self) -> dict:
        """The workload as plain data: part of the CELL id. A generation workload keeps the shape it had
        before perplexity existed, so its CELL ids (and RUNs compared across versions) stay the same."""
        if self.is_perplexity:
            return {"name": self.name, "kind": self.kind, "text": self.text, "context": self.context,
                    "stride": self.stride}
        return {"name": self.name, "prompt": self.prompt, "gen_tokens": self.gen_tokens,
                "prompt_tokens": self.prompt_tokens}

    @classmethod
    def from_json(cls, data: dict) -> Workload:
        if data.get("kind") == "perplexity":
            return cls(data["name"], None, None, None, "perplexity", data["text"], data["context"], data["stride"])
        return cls(data["name"], data["prompt"], data["gen_tokens"], data.get("prompt_tokens"))


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
    # Things that do not stop a RUN but probably are not what was meant (rules matching nothing).
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # The line of each node of the MATRIX file, by JSON path: the PLAN's checks name lines too.
    lines: Mapping[tuple, int] = field(default_factory=dict, compare=False, repr=False)
    # Adaptive repetitions ({min, max, cv_target}): ``repetitions`` is then the max; None for a plain number.
    repetitions_min: int | None = None
    cv_target: float | None = None
    rounds: int = 1  # the PLAN runs this many times, each round in a seeded, shuffled order
    seed: int | None = None  # of that order; None: drawn when the RUN starts (run.json records it)
    platform: str | None = None  # build and run the IMAGEs for this platform (None: the host's)
    baseline: str | None = None  # ENGINE or ENGINE/FORMAT the summary's ratios are to (report/ reads it)

    def memory_limit_bytes(self) -> int:
        return parse_size(self.memory_limit)


def parse_size(text: str) -> int:
    """'512m' -> bytes; suffixes k, m, g are powers of 1024."""
    return bounds.parse_size(text)


def _line_for(index: dict[tuple, int], path: tuple) -> int | None:
    while path not in index and path:
        path = path[:-1]
    return index.get(path)


def parse(text: str | bytes, source: str = "<matrix>") -> Matrix:
    """Parse and validate MATRIX text (bounded: see yamlsafe and bounds); raise InputError listing every problem."""
    document = yamlsafe.load(text, source)
    data, index = document.data, document.lines
    if not isinstance(data, dict):
        raise InputError(source, [Problem(source, "", 1, "the MATRIX must be a YAML mapping",
                                          "keys version, engines, models, threads, workloads, ...")])
    problems = [Problem(source, schemas.json_path(path), _line_for(index, path), f"{value} is not a finite number",
                        "a finite number: JSON, and so the job file, cannot hold NaN or infinity")
                for path, value in _non_finite(data) if path != ("timeout_s",)]  # timeout_s: bounds says more
    # The compiled validator says whether there is anything to report; only then is jsonschema
    # (slow to import) asked for every error with its path.
    errors = [] if schemas.passes("matrix", data) else list(schemas.validator("matrix").iter_errors(data))
    for error in errors:
        problems += _schema_problems(error, source, index)
    try:
        if not any(e.validator == "maxItems" for e in errors):  # the checks below stay cheap on bounded lists
            problems += _semantic_problems(data, source, index)
    except (KeyError, TypeError, AttributeError, ValueError):
        if not problems:
            raise
        # the structure is broken; the schema problems above say how
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise InputError(source, problems)
    built = _build(data, source, text if isinstance(text, str) else text.decode("utf-8"))
    warnings = bounds.rule_warnings(data, lambda path: f"{source}:{_line_for(index, path)}")
    return replace(built, warnings=tuple(warnings), lines=index)


def line_of(matrix: Matrix, path: tuple) -> int | None:
    """The line of the MATRIX file a JSON path into it is on (its nearest enclosing node's line)."""
    return _line_for(matrix.lines, path)


def load(path: str | Path) -> Matrix:
    """Read (a regular file of at most yamlsafe.MAX_BYTES) and validate the MATRIX file at ``path``."""
    return parse(yamlsafe.read(path, "a MATRIX YAML file"), str(path))


# YAML 1.1 reads a float only with a dot and a signed exponent: 1e3 and 1.0e3 are strings.
_YAML11_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?")


def _schema_problems(error, source: str, index) -> list[Problem]:
    """One Problem per schema error; an unknown key is reported at its own line, with a likely spelling."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        found = []
        for key in (k for k in error.instance if k not in allowed):
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append(Problem(source, schemas.json_path(path + (key,)), _line_for(index, path + (key,)),
                                 f"Additional properties are not allowed: unknown key {quote(str(key), 60)!r}{hint}",
                                 ", ".join(allowed)))
        if found:
            return found
    message, instance = error.message, repr(error.instance)
    if len(instance) > 80 and instance in message:  # jsonschema quotes the whole value; keep what it says of it
        message = message.replace(instance, quote(instance, 60))
    message = quote(message, 300)
    if (error.validator == "type" and isinstance(error.instance, str)
            and set(_as_list(error.validator_value)) & {"number", "integer"} and _YAML11_NUMBER.fullmatch(error.instance)):
        message += (f" (YAML 1.1 reads {error.instance!r} as a string: a float needs a dot and a signed exponent, "
                    f"e.g. 1.0e+3, or write the number out, e.g. 1000)")
    return [Problem(source, schemas.json_path(path), _line_for(index, path), message, _allowed(error))]


def _non_finite(node, path: tuple = ()):
    """(path, value) of every NaN or infinite float in parsed YAML data (its depth is bounded by yamlsafe)."""
    if isinstance(node, float) and not math.isfinite(node):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _non_finite(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _non_finite(value, path + (i,))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


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

    bounds.limit_problems(data, add)  # memory, time and CPU limits: enforceable or refused
    bounds.size_problems(data, add)  # how many CELLs, how large a RESULT

    known = catalogue.load()
    engine_names = [e["name"] for e in data["engines"]]
    variants = [(e["name"], _canonical(e.get("options", {}))) for e in data["engines"]]
    for i, name in enumerate(engine_names):
        if name not in ENGINES:
            add(("engines", i, "name"), f"unknown engine {name!r}", ", ".join(public_engines()))
        elif variants.index(variants[i]) != i:
            add(("engines", i, "name"), f"engine {name!r} is listed twice with the same options",
                "an engine more than once only with different options")
        if name in ENGINES:
            for found in engine_options.problems(ENGINES[name].options, data["engines"][i].get("options", {})):
                add(("engines", i, "options") + ((found.option,) if found.option else ()), found.message,
                    found.allowed)
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
    if "baseline" in data:
        engine, _, fmt = data["baseline"].partition("/")
        if engine not in engine_names:
            add(("baseline",), f"baseline engine {engine!r} is not an engine of this MATRIX", ", ".join(engine_names))
        elif fmt and not any(fmt in m["formats"] for m in data["models"]):
            add(("baseline",), f"baseline format {fmt!r} is not a format of this MATRIX",
                ", ".join(dict.fromkeys(f for m in data["models"] for f in m["formats"])))
    repetitions = data.get("repetitions")
    if isinstance(repetitions, dict) and repetitions["min"] > repetitions["max"]:
        add(("repetitions", "min"), f"repetitions.min {repetitions['min']} is above repetitions.max "
            f"{repetitions['max']}", "min <= max")
    names = [w["name"] for w in data["workloads"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            add(("workloads", i, "name"), f"workload name {name!r} is used twice", "unique names")
    for i, workload in enumerate(data["workloads"]):
        if workload.get("kind") == "perplexity":
            _check_perplexity(i, workload, data, known, add)
            continue
        for model in data["models"]:
            entry = known.get(model["id"])
            need = (workload.get("prompt_tokens") or 0) + workload["gen_tokens"]
            if entry is not None and entry.context_length and need > entry.context_length:
                add(("workloads", i), f"prompt_tokens + gen_tokens = {need} exceeds the context length "
                    f"{entry.context_length} of model {model['id']!r}", f"at most {entry.context_length} tokens")
    return problems


def _check_perplexity(i: int, workload: dict, data: dict, known: dict, add) -> None:
    """A perplexity workload: a known text, stride within context, context within every model's, an engine for it."""
    catalogue_texts = texts.load()
    if workload["text"] not in catalogue_texts:
        add(("workloads", i, "text"), f"unknown evaluation text {workload['text']!r}",
            ", ".join(sorted(catalogue_texts)) + " (catalogue/texts.yaml)")
    if workload["stride"] >= workload["context"]:
        add(("workloads", i, "stride"), f"stride {workload['stride']} is not below context {workload['context']}: "
            "the first id of every window after the first would never be scored", f"1 to {workload['context'] - 1}")
    for model in data["models"]:
        entry = known.get(model["id"])
        if entry is not None and entry.context_length and workload["context"] > entry.context_length:
            add(("workloads", i, "context"), f"context {workload['context']} exceeds the context length "
                f"{entry.context_length} of model {model['id']!r}", f"at most {entry.context_length}")
    if not any(name in ENGINES and "perplexity" in ENGINES[name].workloads for name in (e["name"] for e in data["engines"])):
        add(("workloads", i, "kind"), "no engine in this MATRIX runs a perplexity workload",
            ", ".join(sorted(n for n, e in ENGINES.items() if "perplexity" in e.workloads and not e.test_only)))


def _repetitions(data: dict) -> tuple[int | None, int, float | None]:
    """(min, max, cv_target) of the MATRIX's repetitions; a plain number N is (None, N, None)."""
    value = data.get("repetitions", DEFAULTS["repetitions"])
    if isinstance(value, dict):
        return value["min"], value["max"], float(value["cv_target"])
    return None, value, None


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
        workloads=tuple(Workload.from_json(w) for w in data["workloads"]),
        warmup=data.get("warmup", DEFAULTS["warmup"]),
        repetitions=_repetitions(data)[1],
        repetitions_min=_repetitions(data)[0],
        cv_target=_repetitions(data)[2],
        rounds=data.get("rounds", 1),
        seed=data.get("seed"),
        platform=data.get("platform"),
        baseline=data.get("baseline"),
        placement=Placement(placement.get("policy", "reserve-one"), placement.get("cpus")),
        memory_limit=str(data.get("memory_limit", DEFAULTS["memory_limit"])),
        timeout_s=float(data.get("timeout_s", DEFAULTS["timeout_s"])),
        include=tuple(data.get("include", ())),
        exclude=tuple(data.get("exclude", ())),
        raw=text,
    )
