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
}
PARENT_FORMAT = {"gguf-f32": "safetensors", "gguf-f16": "gguf-f32", "gguf-q8_0": "gguf-f32", "gguf-q4_0": "gguf-f32"}


@dataclass(frozen=True)
class Entry:
    """One catalogue entry."""

    id: str
    family: str
    architecture_json: str
    tokenizer: str
    seed: int
    init_std: float
    formats: tuple[str, ...]
    published_parameters: int | None = None
    description: str = ""

    @property
    def architecture(self) -> dict:
        return json.loads(self.architecture_json)

    @property
    def context_length(self) -> int:
        return self.architecture["context_length"]

    def spec(self) -> dict:
        """The recipe handed to the model maker: everything that decides the bytes."""
        return {"id": self.id, "family": self.family, **self.architecture, "tokenizer": self.tokenizer,
                "seed": self.seed, "init_std": self.init_std}

    def recipe_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]


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
        entries[item["id"]] = Entry(
            id=item["id"], family=item["family"],
            architecture_json=json.dumps(item["architecture"], sort_keys=True),
            tokenizer=item["tokenizer"], seed=item["seed"], init_std=item["init_std"],
            formats=tuple(item["formats"]), published_parameters=item.get("published_parameters"),
            description=item.get("description", ""))
    return entries


def get(model_id: str) -> Entry:
    entries = load()
    if model_id not in entries:
        raise CatalogueError(f"unknown model {model_id!r}; the catalogue has: {', '.join(sorted(entries))}")
    return entries[model_id]
