"""The model SPEC: a JSON object that fixes a model's architecture, seed and tokenizer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FAMILIES = ("llama",)
# SPEC "tokenizer" -> the vocabulary size it fixes (llama.cpp's vocab GGUF it is rebuilt from).
TOKENIZERS = {"llama-spm": 32000, "starcoder-bpe": 49152}


@dataclass(frozen=True)
class ModelSpec:
    """One model to make; every field is required so a SPEC reads the same everywhere."""

    id: str
    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_size: int
    vocab_size: int
    context_length: int
    rope_theta: float
    norm_eps: float
    tied_output: bool
    seed: int
    init_std: float
    tokenizer: str

    def to_dict(self) -> dict:
        return asdict(self)


class SpecError(ValueError):
    """A SPEC file that cannot describe a model; the message names the field."""


def _check_type(name: str, value, kind: type) -> None:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if kind is int and isinstance(value, bool):
        raise SpecError(f"{name}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise SpecError(f"{name}: expected {kind.__name__}, got {value!r}")


def parse_spec(data: object) -> ModelSpec:
    """Validate a decoded SPEC object and build the spec."""
    if not isinstance(data, dict):
        raise SpecError("SPEC must be a JSON object")
    kinds = {name: field.type for name, field in ModelSpec.__dataclass_fields__.items()}
    types = {"str": str, "int": int, "float": float, "bool": bool}
    missing = sorted(set(kinds) - set(data))
    unknown = sorted(set(data) - set(kinds))
    if missing:
        raise SpecError(f"missing fields: {', '.join(missing)}")
    if unknown:
        raise SpecError(f"unknown fields: {', '.join(unknown)}")
    for name, kind in kinds.items():
        _check_type(name, data[name], types[kind])
    values = {name: float(data[name]) if kinds[name] == "float" else data[name] for name in kinds}
    spec = ModelSpec(**values)

    if spec.family not in FAMILIES:
        raise SpecError(f"family: {spec.family!r} not supported; known: {', '.join(FAMILIES)}")
    if spec.tokenizer not in TOKENIZERS:
        raise SpecError(f"tokenizer: {spec.tokenizer!r} not supported; known: {', '.join(TOKENIZERS)}")
    if spec.vocab_size != TOKENIZERS[spec.tokenizer]:
        raise SpecError(f"vocab_size: {spec.vocab_size} does not match tokenizer {spec.tokenizer!r} "
                        f"({TOKENIZERS[spec.tokenizer]} tokens)")
    for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_size",
                 "vocab_size", "context_length"):
        if getattr(spec, name) <= 0:
            raise SpecError(f"{name}: must be positive")
    if spec.hidden_size % spec.num_heads:
        raise SpecError("hidden_size must be a multiple of num_heads")
    if (spec.hidden_size // spec.num_heads) % 2:
        raise SpecError("head size (hidden_size / num_heads) must be even for RoPE")
    if spec.num_heads % spec.num_kv_heads:
        raise SpecError("num_heads must be a multiple of num_kv_heads")
    if not (spec.init_std > 0 and spec.norm_eps > 0 and spec.rope_theta > 0):
        raise SpecError("init_std, norm_eps and rope_theta must be positive")
    if not 0 <= spec.seed < 2**63:
        raise SpecError("seed: must be in [0, 2**63)")
    if not spec.id or "/" in spec.id or spec.id.startswith("."):
        raise SpecError(f"id: {spec.id!r} is not a plain name")
    return spec


def load_spec(path: Path) -> ModelSpec:
    """Read and validate a SPEC file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SpecError(f"{path}: {err}") from err
    return parse_spec(data)
