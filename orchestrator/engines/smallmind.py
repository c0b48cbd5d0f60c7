"""ENGINE adapter for SmallMind, the pure C# (.NET 10) engine: two paths, each refused where it would run garbage.

SmallMind runs a GGUF file along one of two paths (images/smallmind/README.md cites the
upstream lines for every fact used here):

- ``public``: its public API (SmallMindFactory.Create with GGUF import), the product path.
  It converts the GGUF to SMQ and always builds a GPT-2-small-shaped model (learned
  positions, LayerNorm, fused QKV, GELU MLP; 50257 x 1024 x 768, 12 layers, 12 heads),
  whatever the file holds: only tensors whose name and size fit are copied in.
- ``run-gguf``: its own GgufModelLoader and InferenceSession, the path its console command
  ``run-gguf`` takes: Llama-family models with RoPE, RMSNorm, grouped-query attention,
  SwiGLU and tied embeddings, every weight dequantized to FP32.

On both paths the threads follow .NET's processor count (SmallMind reads no thread
setting), every weight is dequantized to FP32 at load, and generation stops at
end-of-sequence. :func:`supports` refuses, at validation, a model or
format the chosen path cannot run faithfully.
"""

from __future__ import annotations

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

PUBLIC, RUN_GGUF = "public", "run-gguf"

# The shapes the public path builds whatever the GGUF says: the defaults of SmallMindEngine's
# CreateLegacyGptConfig (the importer keeps no gpt2.* metadata) and the legacy MLP's 4 x width.
GPT2_SMALL = {"vocab_size": 50257, "context_length": 1024, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
              "num_kv_heads": 12, "ffn_size": 3072}

# GGUF formats both paths are handed, and why some are refused.
FORMATS = frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1"})
MISDECODED = {
    "gguf-q4_0": "SmallMind decodes Q4_0 blocks as interleaved two's-complement nibbles, while GGML stores the "
                 "first 16 values in the low nibbles and the last 16 in the high ones, offset by 8 (GgufImporter "
                 "and GgufModelLoader alike): every weight would be wrong",
}
Q4_1 = {
    PUBLIC: "SmallMind's importer copies Q4_1 blocks unchanged into a tensor that reads its nibbles interleaved, "
            "while GGML stores the first 16 values in the low nibbles and the last 16 in the high ones: every "
            "weight would be out of place",
    RUN_GGUF: "SmallMind's GgufModelLoader has no Q4_1 decoder: loading stops with 'Unsupported tensor type: Q4_1'",
}


def _public(entry) -> str | None:
    if entry.family != "gpt2":
        return (f"SmallMind's public API builds a GPT-2-shaped model (learned positions, LayerNorm, fused QKV, GELU "
                f"MLP) for every GGUF: a {entry.family} model's separate q/k/v and gate weights, grouped K/V and "
                f"RMSNorm do not fit it and would stay random; set options {{path: {RUN_GGUF}}}, SmallMind's own "
                f"path for Llama-family models")
    arch = entry.architecture
    differ = [f"{key} {arch.get(key)} (builds {value})" for key, value in GPT2_SMALL.items() if arch.get(key) != value]
    if differ:
        return ("SmallMind's public API ignores a GPT-2 GGUF's shapes and always builds GPT-2 small; this model "
                "differs in " + ", ".join(differ) + ", so its weights would not fit")
    return None


def _run_gguf(entry) -> str | None:
    if entry.family != "llama":
        return (f"SmallMind's GgufModelLoader (the run-gguf path) maps Llama-family tensors; for a {entry.family} "
                f"model it leaves the fused QKV and the position embeddings random; set options {{path: {PUBLIC}}}")
    arch = entry.architecture
    heads, kv, width = arch.get("num_heads", 0), arch.get("num_kv_heads", 0), arch.get("hidden_size", 0)
    if not heads or width % heads or not kv or heads % kv:
        return (f"SmallMind's ModelConfig refuses hidden_size {width} with {heads} heads and {kv} KV heads "
                f"(the width must divide by the heads, the heads by the KV heads)")
    return None


def supports(entry, fmt: str, options: dict) -> str | None:
    """None when the chosen path runs this model faithfully in this format, else why it cannot (Engine.supports)."""
    path = options.get("path", PUBLIC)
    if fmt in MISDECODED:
        return MISDECODED[fmt]
    if fmt == "gguf-q4_1":
        return Q4_1[path]
    if entry.family is None:
        return (f"the catalogue gives no architecture for this model, so it cannot be checked against the one "
                f"SmallMind's {path} path builds")
    return _public(entry) if path == PUBLIC else _run_gguf(entry)


ENGINE = Engine(
    name="smallmind",
    image_dir="smallmind",
    formats=FORMATS,
    description="SmallMind (C#, .NET 10) in process, timed per token id. Option path: 'public' (SmallMindFactory, "
                "GGUF import; GPT-2 small only) or 'run-gguf' (its GgufModelLoader + InferenceSession, as its "
                "run-gguf command; Llama family). FP32 compute on both; greedy through top-k 1; stops at "
                "end-of-sequence; threads follow .NET's processor count (the CELL's CPUs), counted from per-thread "
                "CPU; Q4_0/Q4_1 refused.",
    tmpfs_size="2g",
    supports=supports,
    options=declare({
        "path": {"enum": [PUBLIC, RUN_GGUF], "default": PUBLIC,
                 "description": "which SmallMind path runs the model: 'public' = its public API "
                                "(SmallMindFactory.Create with GGUF import, the product path; builds GPT-2 small), "
                                "'run-gguf' = its internal GgufModelLoader + InferenceSession, the path of its own "
                                "run-gguf command (Llama family: RoPE, RMSNorm, GQA, SwiGLU, tied embeddings)"},
    }),
)
