"""Make a seeded model from a SPEC: Hugging Face files, then GGUF F32 via llama.cpp's converter.

Usage: make_model.py --spec SPEC.json --out DIR [--force]

Writes DIR/hf/ (config, fp32 safetensors, generation config, the tokenizer: SentencePiece
tokenizer.model and/or transformers' tokenizer files), DIR/gguf/model-f32.gguf and, last,
DIR/manifest.json (spec, versions, parameter count, sha256 of every file). The same SPEC
in the same image gives byte-identical files. Progress goes to stderr; a one-line JSON
summary to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bpe_tokenizer
import spm_tokenizer
from spec import ModelSpec, SpecError, load_spec

LLAMA_CPP_DIR = spm_tokenizer.LLAMA_CPP_DIR
CONVERTER = LLAMA_CPP_DIR / "convert_hf_to_gguf.py"
VERSIONS_FILE = Path(os.environ.get("MODELMAKER_VERSIONS", "/opt/modelmaker/versions.json"))
MANIFEST_SCHEMA = "orchestrate.modelmaker.manifest/1"
GGUF_NAME = "model-f32.gguf"
# tokenizer_config.json class: loads tokenizer.json verbatim in transformers 4.x and 5.x.
FAST_CLASS = "PreTrainedTokenizerFast"

_START = time.monotonic()


class MakeError(RuntimeError):
    """A step of making the model failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[modelmaker {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def prepare_out(out: Path, force: bool) -> tuple[Path, Path]:
    """Create DIR/hf and DIR/gguf, refusing to mix with an earlier model unless forced."""
    hf_dir, gguf_dir = out / "hf", out / "gguf"
    manifest = out / "manifest.json"
    existing = [p for p in (hf_dir, gguf_dir, manifest) if p.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise MakeError(f"output exists ({names}); pass --force to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    hf_dir.mkdir()
    gguf_dir.mkdir()
    return hf_dir, gguf_dir


def count_matches(encode, vectors) -> tuple[int, list[str]]:
    """How many (text, ids) vectors an encode function reproduces, and the failing texts."""
    failed = [text for text, ids in vectors if encode(text) != ids]
    return len(vectors) - len(failed), failed


def make_tokenizer(spec: ModelSpec, hf_dir: Path) -> dict:
    """Write tokenizer.model rebuilt from llama.cpp's vocab GGUF plus transformers' files.

    A byte-level BPE vocabulary (bpe_tokenizer.VOCABS) gets transformers' files only.
    """
    from transformers import AutoTokenizer, LlamaTokenizerFast

    if spec.tokenizer in bpe_tokenizer.VOCABS:
        # byte-level BPE: tokenizer.json only (see bpe_tokenizer.py)
        try:
            return bpe_tokenizer.make_hf_tokenizer(spec.tokenizer, spec.vocab_size, hf_dir,
                                                   spec.context_length, FAST_CLASS, log)
        except ValueError as err:
            raise MakeError(str(err)) from err
    vocab_file = spm_tokenizer.vocab_path(spec.tokenizer)
    vocab = spm_tokenizer.read_vocab(vocab_file)
    if len(vocab.pieces) != spec.vocab_size:
        raise MakeError(
            f"vocab_size {spec.vocab_size} does not match tokenizer {spec.tokenizer!r} "
            f"({len(vocab.pieces)} tokens)")
    model_file = hf_dir / "tokenizer.model"
    proto = spm_tokenizer.build_model_proto(vocab)
    model_file.write_bytes(proto)

    vectors = spm_tokenizer.read_vectors(vocab_file)
    processor = spm_tokenizer.load_processor(model_file)
    spm_ok, spm_failed = count_matches(processor.encode, vectors)
    log(f"tokenizer.model: {spm_ok}/{len(vectors)} llama.cpp test vectors matched")
    if spm_failed:
        raise MakeError(f"rebuilt tokenizer.model fails test vectors: {spm_failed[:5]!r}")

    # legacy=True + add_prefix_space=True is the conversion that reproduces SentencePiece
    # exactly (a Prepend normalizer); legacy=False mis-handles leading and repeated spaces.
    fast = LlamaTokenizerFast(
        vocab_file=str(model_file), legacy=True, add_prefix_space=True, from_slow=True,
        add_bos_token=vocab.add_bos, add_eos_token=vocab.add_eos,
        model_max_length=spec.context_length)
    fast.save_pretrained(str(hf_dir))
    if model_file.read_bytes() != proto:
        raise MakeError("transformers rewrote tokenizer.model differently")

    # As "LlamaTokenizer", transformers 5 rebuilds the pipeline itself and drops the
    # Prepend normalizer (31/46 vectors with 5.24); the generic class loads tokenizer.json as saved.
    set_tokenizer_class(hf_dir, FAST_CLASS)
    loaded = AutoTokenizer.from_pretrained(str(hf_dir))
    fast_ok, fast_failed = count_matches(
        lambda text: loaded.encode(text, add_special_tokens=False), vectors)
    log(f"tokenizer.json ({type(loaded).__name__}): {fast_ok}/{len(vectors)} test vectors matched")
    if fast_failed:
        # Keep the files consistent: without tokenizer.json transformers falls back to the
        # SentencePiece model, which matched every vector.
        (hf_dir / "tokenizer.json").unlink()
        set_tokenizer_class(hf_dir, "LlamaTokenizer")
        log(f"warning: dropped tokenizer.json, it fails {len(fast_failed)} vectors: {fast_failed[:5]!r}")
    return {
        "name": spec.tokenizer,
        "source": f"llama.cpp models/{vocab_file.name}",
        "test_vectors": len(vectors),
        "sentencepiece_matched": spm_ok,
        "tokenizer_json_matched": fast_ok,
        "tokenizer_json": not fast_failed,
        "tokenizer_class": FAST_CLASS if not fast_failed else "LlamaTokenizer",
        "test_vectors_matched": spm_ok,
        "bos_id": vocab.bos_id,
        "eos_id": vocab.eos_id,
        "add_bos": vocab.add_bos,
        "once_upon_a_time": processor.encode("Once upon a time", add_bos=True),
    }


def set_tokenizer_class(hf_dir: Path, name: str) -> None:
    """Rewrite tokenizer_config.json's tokenizer_class, formatted as transformers writes it."""
    path = hf_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = name
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def make_weights(spec: ModelSpec, hf_dir: Path, bos_id: int | None = 1, eos_id: int | None = 2) -> int:
    """Initialise the model from the seed, save it as fp32 safetensors; return the parameter count.

    Every Linear and Embedding weight is drawn from normal(0, init_std), norms are 1.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.ffn_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.context_length,
        initializer_range=spec.init_std,
        rms_norm_eps=spec.norm_eps,
        rope_theta=spec.rope_theta,
        tie_word_embeddings=spec.tied_output,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=None,
        dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    n_params = sum(p.numel() for p in model.parameters())  # shared tensors counted once
    log(f"initialised LlamaForCausalLM: {n_params:,} parameters "
        f"(seed {spec.seed}, std {spec.init_std})")
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    return n_params


def safetensors_params(path: Path) -> int:
    """Elements stored in a safetensors file (a tied output layer is stored once)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        return sum(_prod(handle.get_slice(key).get_shape()) for key in handle.keys())


def _prod(shape) -> int:
    n = 1
    for dim in shape:
        n *= int(dim)
    return n


def convert_to_gguf(spec: ModelSpec, hf_dir: Path, gguf_file: Path) -> None:
    """Run llama.cpp's own convert_hf_to_gguf.py to F32."""
    cmd = [sys.executable, str(CONVERTER), str(hf_dir), "--outtype", "f32",
           "--outfile", str(gguf_file), "--model-name", spec.id]
    log("running " + " ".join(cmd[1:]))
    result = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise MakeError(f"convert_hf_to_gguf.py exited with {result.returncode}")


def check_gguf(spec: ModelSpec, gguf_file: Path, hf_dir: Path, n_params: int) -> None:
    """Read the GGUF back: hyperparameters, element count and unpermuted tensors must match."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    reader = gguf.GGUFReader(gguf_file)
    expect = {
        "general.architecture": "llama",
        "llama.context_length": spec.context_length,
        "llama.embedding_length": spec.hidden_size,
        "llama.block_count": spec.num_layers,
        "llama.feed_forward_length": spec.ffn_size,
        "llama.attention.head_count": spec.num_heads,
        "llama.attention.head_count_kv": spec.num_kv_heads,
        "llama.vocab_size": spec.vocab_size,
    }
    for key, want in expect.items():
        field = reader.get_field(key)
        got = None if field is None else field.contents()
        if got != want:
            raise MakeError(f"GGUF {key} is {got!r}, expected {want!r}")
    for key, want in (("llama.rope.freq_base", spec.rope_theta),
                      ("llama.attention.layer_norm_rms_epsilon", spec.norm_eps)):
        field = reader.get_field(key)
        if field is None or not np.isclose(field.contents(), want, rtol=1e-6):
            raise MakeError(f"GGUF {key} missing or not {want}")
    n_gguf = sum(int(t.n_elements) for t in reader.tensors)
    if n_gguf != n_params:
        raise MakeError(f"GGUF holds {n_gguf:,} elements, the model has {n_params:,}")

    weights = load_file(str(hf_dir / "model.safetensors"))
    tensors = {t.name: t for t in reader.tensors}
    pairs = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    for layer in range(spec.num_layers):
        pairs[f"blk.{layer}.ffn_down.weight"] = f"model.layers.{layer}.mlp.down_proj.weight"
        pairs[f"blk.{layer}.attn_v.weight"] = f"model.layers.{layer}.self_attn.v_proj.weight"
    for gguf_name, hf_name in pairs.items():
        if gguf_name not in tensors:
            raise MakeError(f"GGUF lacks tensor {gguf_name}")
        data = np.asarray(tensors[gguf_name].data).reshape(weights[hf_name].shape)
        if data.dtype != np.float32 or not np.array_equal(data, weights[hf_name]):
            raise MakeError(f"GGUF tensor {gguf_name} differs from {hf_name}")
    if spec.tied_output == ("output.weight" in tensors):
        raise MakeError(f"GGUF output.weight presence does not match tied_output={spec.tied_output}")
    log(f"GGUF read back: {len(tensors)} tensors, {n_gguf:,} elements, hyperparameters match")


def fix_modes(paths: list[Path]) -> None:
    """Dirs 0755, files 0644: save_pretrained leaves 0600 files another uid cannot read.

    Only what this run created: --out itself may belong to another uid (the caller's).
    """
    for path in paths:
        for root, _dirs, files in os.walk(path):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_table(out: Path, dirs: list[Path]) -> dict:
    """sha256 and size of every file under dirs, keyed by path relative to out, sorted."""
    table = {}
    for path in sorted(p for d in dirs for p in d.rglob("*") if p.is_file()):
        table[path.relative_to(out).as_posix()] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return table


def read_versions() -> dict:
    try:
        return json.loads(VERSIONS_FILE.read_text(encoding="utf-8"))
    except OSError:
        return {"error": f"{VERSIONS_FILE} not found (running outside the image?)"}


def write_manifest(out: Path, manifest: dict) -> Path:
    """Write manifest.json atomically; its presence marks a complete model."""
    final = out / "manifest.json"
    partial = out / ".manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(partial, 0o644)
    os.replace(partial, final)
    return final


def make(spec: ModelSpec, out: Path, force: bool) -> dict:
    hf_dir, gguf_dir = prepare_out(out, force)
    log(f"making {spec.id!r} into {out}")
    tokenizer = make_tokenizer(spec, hf_dir)
    n_params = make_weights(spec, hf_dir, tokenizer["bos_id"], tokenizer["eos_id"])
    stored = safetensors_params(hf_dir / "model.safetensors")
    if stored != n_params:
        raise MakeError(f"model.safetensors holds {stored:,} elements, the model has {n_params:,}")
    gguf_file = gguf_dir / GGUF_NAME
    convert_to_gguf(spec, hf_dir, gguf_file)
    check_gguf(spec, gguf_file, hf_dir, n_params)
    if spec.tokenizer in bpe_tokenizer.VOCABS:
        import gguf

        try:
            bpe_tokenizer.check_converted_gguf(spec.tokenizer, gguf.GGUFReader(gguf_file))
        except ValueError as err:
            raise MakeError(str(err)) from err
        log(f"GGUF vocabulary matches llama.cpp's (pre-tokenizer {tokenizer['pre_tokenizer']!r})")
    fix_modes([hf_dir, gguf_dir])
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "spec": spec.to_dict(),
        "parameters": n_params,
        "tokenizer": tokenizer,
        "gguf": {"path": f"gguf/{GGUF_NAME}", "outtype": "f32", "converter": "convert_hf_to_gguf.py"},
        "versions": read_versions(),
        "files": file_table(out, [hf_dir, gguf_dir]),
    }
    write_manifest(out, manifest)
    log(f"done in {time.monotonic() - _START:.1f}s")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="SPEC JSON file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="replace an existing model in --out")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
        manifest = make(spec, args.out, args.force)
    except (SpecError, MakeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, SpecError) else 1
    summary = {"id": spec.id, "parameters": manifest["parameters"],
               "files": {k: v["sha256"] for k, v in manifest["files"].items()}}
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
