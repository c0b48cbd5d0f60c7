"""The model catalogue (catalogue/models.yaml): entries MATRIX files refer to by id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from orchestrator import schemas
from orchestrator.errors import CatalogueError

CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue" / "models.yaml"

# Where each format lives inside a prepared model folder, and which format it is made from.
FORMAT_FILES = {
    "safetensors": "hf",  # a directory: config.json, model.safetensors, tokenizer files
    "gguf-f32": "gguf/model-f32.gguf",
    "gguf-f16": "gguf/model-f16.gguf",
    "gguf-q8_0": "gguf/model-q8_0.gguf",
    "gguf-q4_0": "gguf/model-q4_0.gguf",
    "onnx": "onnx",  # a directory: model.onnx (+ external data), onnx_io.json
}
PARENT_FORMAT = {"gguf-f32": "safetensors", "gguf-f16": "gguf-f32", "gguf-q8_0": "gguf-f32",
                 "gguf-q4_0": "gguf-f32", "onnx": "safetensors"}
# Bytes per parameter of each format, for the free-space check before making a model
# (an upper bound for a guard, never reported as a measurement).
BYTES_PER_PARAMETER = {"safetensors": 4.0, "gguf-f32": 4.0, "gguf-f16": 2.0, "gguf-q8_0": 34 / 32,
                       "gguf-q4_0": 18 / 32, "onnx": 4.0}


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: synthetic (architecture + seed) or real (downloads)."""

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

    @property
    def synthetic(self) -> bool:
        return self.family is not None

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
        if not self.synthetic:
            return {"id": self.id, "downloads": self.downloads}
        return {"id": self.id, "family": self.family, **self.architecture, "tokenizer": self.tokenizer,
                "seed": self.seed, "init_std": self.init_std}

    def recipe_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]

    def required_bytes(self, formats) -> int:
        """Upper bound of the bytes the given formats take, for the free-space check."""
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


@cache
def load(path: Path = CATALOGUE) -> dict[str, Entry]:
    """Every catalogue entry by id, validated against schemas/catalogue.schema.json."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"cannot read the model catalogue {path}: {exc}") from None
    found = schemas.problems("catalogue", data)
    if found:
        raise CatalogueError(f"{path} is invalid: " + "; ".join(f"{p}: {m}" for p, m in found))
    entries = {}
    for item in data["models"]:
        if item["id"] in entries:
            raise CatalogueError(f"{path}: model id {item['id']!r} appears twice")
        if "downloads" in item:
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
