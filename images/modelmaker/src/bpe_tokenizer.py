"""Rebuild a byte-level BPE tokenizer (Hugging Face tokenizer.json) from a llama.cpp vocab GGUF.

llama.cpp ships vocab-only GGUF files with test vectors (`models/ggml-vocab-*.gguf` with
`.inp`/`.out`). For a GPT-2 style ("gpt2" model) vocabulary the GGUF holds everything a
`tokenizers` BPE model needs: the tokens (byte-level alphabet, "Ġ" for a space), the
merges in rank order, the token types (control tokens are the special ones) and the
special ids. What the GGUF names only by `tokenizer.ggml.pre` is the pre-tokenizer; the
ones known here are rebuilt from Hugging Face's own components (PRE_TOKENIZERS).

llama.cpp's `convert_hf_to_gguf.py` recognises a pre-tokenizer by hashing the ids the
tokenizer gives for a fixed text (`chkhsh`); `converter_pre_name()` runs that same check
with the text and hash table read from the converter's source, so a tokenizer that would
be written to GGUF without (or with the wrong) `tokenizer.ggml.pre` is caught here.
"""

from __future__ import annotations

import ast
import functools
import json
import os
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import gguf

# Where the Dockerfile puts llama.cpp's files; overridable for runs outside the image.
LLAMA_CPP_DIR = Path(os.environ.get("MODELMAKER_LLAMA_CPP", "/opt/llama.cpp"))

# SPEC "tokenizer" value -> vocab GGUF shipped in llama.cpp's models/ folder.
VOCABS = {"starcoder-bpe": "ggml-vocab-starcoder.gguf"}

# GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_USER_DEFINED, TYPE_UNUSED, TYPE_BYTE = 1, 2, 3, 4, 5, 6

# tokenizer.ggml.pre -> Hugging Face pre-tokenizer that splits text the same way as
# llama.cpp's regexes for it (src/llama-vocab.cpp). "starcoder": every digit on its own
# ("\p{N}"), then GPT-2's byte-level split without a prefix space.
def _starcoder_pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


# "smollm" (SmolLM/SmolLM2) uses the very same regexes as "starcoder" in llama.cpp's
# src/llama-vocab.cpp (one case label, clean_spaces = false for both).
PRE_TOKENIZERS = {"starcoder": _starcoder_pre_tokenizer, "smollm": _starcoder_pre_tokenizer}

# A name for the pre-tokenizer function in convert_hf_to_gguf (conversion/base.py).
CONVERTER_SOURCES = ("conversion/base.py", "convert_hf_to_gguf.py")
CONVERTER_FUNCTION = "get_vocab_base_pre"


@dataclass(frozen=True)
class BpeVocab:
    """What a byte-level BPE tokenizer needs from the GGUF."""

    tokens: list[str]
    types: list[int]
    merges: list[tuple[str, str]]
    pre: str
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool  # GGUF tokenizer.ggml.add_bos_token; llama.cpp's default (False) when absent
    add_eos: bool

    def token(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]


def vocab_path(name: str) -> Path:
    """The vocab GGUF for a SPEC tokenizer name."""
    if name not in VOCABS:
        raise ValueError(f"unknown tokenizer {name!r}; known: {sorted(VOCABS)}")
    return LLAMA_CPP_DIR / "models" / VOCABS[name]


def _field(reader: gguf.GGUFReader, key: str, default=KeyError):
    field = reader.get_field(key)
    if field is None:
        if default is KeyError:
            raise ValueError(f"{key} missing from vocab GGUF")
        return default
    return field.contents()


@functools.cache
def read_vocab(path: Path) -> BpeVocab:
    """Read a GPT-2 style ('gpt2') BPE vocabulary from a vocab-only GGUF (cached: ~5 s a read)."""
    reader = gguf.GGUFReader(path)
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(f"{path}: tokenizer model {model!r} is not byte-level BPE ('gpt2')")
    pre = _field(reader, "tokenizer.ggml.pre")
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"{path}: pre-tokenizer {pre!r} not supported; known: {sorted(PRE_TOKENIZERS)}")
    tokens = [str(t) for t in _field(reader, "tokenizer.ggml.tokens")]
    types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type")]
    if len(tokens) != len(types):
        raise ValueError(f"{path}: tokens and token types differ in length")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{path}: duplicate tokens")
    merges = []
    for merge in _field(reader, "tokenizer.ggml.merges"):
        parts = str(merge).split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path}: merge {merge!r} is not two byte-level pieces")
        merges.append((parts[0], parts[1]))

    def special(key: str) -> int | None:
        value = _field(reader, f"tokenizer.ggml.{key}_token_id", None)
        if value is None:
            return None
        if not 0 <= int(value) < len(tokens):
            raise ValueError(f"{path}: {key} token id {value} out of range")
        return int(value)

    return BpeVocab(
        tokens=tokens, types=types, merges=merges, pre=str(pre),
        bos_id=special("bos"), eos_id=special("eos"), unk_id=special("unknown"), pad_id=special("padding"),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        add_eos=bool(_field(reader, "tokenizer.ggml.add_eos_token", False)),
    )


def build_tokenizer(vocab: BpeVocab):
    """A `tokenizers.Tokenizer`: BPE over the GGUF's tokens and merges, byte-level, its pre-tokenizer.

    Control tokens become special added tokens (matched whole, never split, not normalised);
    user-defined ones plain added tokens. The post-processor adds nothing (ByteLevel), as in
    llama.cpp with add_bos/add_eos off; a vocab that asks for BOS/EOS is refused.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors

    if vocab.add_bos or vocab.add_eos:
        raise ValueError("vocabularies that add BOS/EOS are not supported by the BPE rebuild")
    for kind in (TYPE_UNKNOWN, TYPE_UNUSED, TYPE_BYTE):
        if kind in vocab.types:
            raise ValueError(f"token type {kind} not supported in a byte-level BPE vocabulary")
    bpe = models.BPE(
        vocab={token: i for i, token in enumerate(vocab.tokens)},
        merges=list(vocab.merges),
        fuse_unk=False, byte_fallback=False, ignore_merges=False,
    )  # no dropout, unk token, subword prefix or word suffix: byte-level covers every input
    tokenizer = Tokenizer(bpe)
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = PRE_TOKENIZERS[vocab.pre]()
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)
    added = []
    for token_id, (token, kind) in enumerate(zip(vocab.tokens, vocab.types)):
        if kind in (TYPE_CONTROL, TYPE_USER_DEFINED):
            added.append((token_id, AddedToken(token, single_word=False, lstrip=False, rstrip=False,
                                               normalized=False, special=kind == TYPE_CONTROL)))
    tokenizer.add_tokens([token for _id, token in added])
    for token_id, token in added:
        if tokenizer.token_to_id(token.content) != token_id:
            raise ValueError(f"added token {token.content!r} did not keep id {token_id}")
    if tokenizer.get_vocab_size(with_added_tokens=True) != len(vocab.tokens):
        raise ValueError("rebuilt tokenizer has a different vocabulary size")
    return tokenizer


def write_hf_files(vocab: BpeVocab, hf_dir: Path, model_max_length: int, tokenizer_class: str) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json for transformers.

    Saved by transformers itself (PreTrainedTokenizerFast.save_pretrained), then
    tokenizer_config.json's class set to `tokenizer_class`, add_bos_token/add_eos_token
    stated and the file re-written sorted.
    """
    from transformers import PreTrainedTokenizerFast

    specials = {f"{name}_token": vocab.token(token_id)
                for name, token_id in (("bos", vocab.bos_id), ("eos", vocab.eos_id),
                                       ("unk", vocab.unk_id), ("pad", vocab.pad_id))
                if token_id is not None}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(vocab),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        add_bos_token=vocab.add_bos,
        add_eos_token=vocab.add_eos,
        **specials,
    )
    fast.save_pretrained(str(hf_dir))
    path = hf_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = tokenizer_class
    # Stated, not left to defaults: nothing is added around the text (llama.cpp: add_bos_token).
    config["add_bos_token"] = vocab.add_bos
    config["add_eos_token"] = vocab.add_eos
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- convert_hf_to_gguf's chkhsh


@dataclass(frozen=True)
class ConverterTable:
    """chktxt and the chkhsh -> tokenizer.ggml.pre table of llama.cpp's converter."""

    chktxt: str
    names: dict[str, str]
    source: str


def converter_table(llama_cpp_dir: Path = LLAMA_CPP_DIR) -> ConverterTable:
    """Read chktxt and the known hashes from the converter's source (not imported: no torch needed)."""
    for relative in CONVERTER_SOURCES:
        path = llama_cpp_dir / relative
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == CONVERTER_FUNCTION:
                return _table_from_function(node, relative)
    raise ValueError(f"{CONVERTER_FUNCTION}() not found in {llama_cpp_dir} ({', '.join(CONVERTER_SOURCES)})")


def _table_from_function(func: ast.FunctionDef, source: str) -> ConverterTable:
    chktxt = None
    names: dict[str, str] = {}
    for node in ast.walk(func):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "chktxt"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            chktxt = node.value.value
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "chkhsh"
                and len(node.test.comparators) == 1 and isinstance(node.test.comparators[0], ast.Constant)):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == "res" and isinstance(stmt.value, ast.Constant)):
                    names.setdefault(node.test.comparators[0].value, stmt.value.value)
    if chktxt is None or not names:
        raise ValueError(f"{source}: {CONVERTER_FUNCTION}() has no chktxt or no chkhsh table")
    return ConverterTable(chktxt=chktxt, names=names, source=source)


def converter_pre_name(encode, table: ConverterTable | None = None) -> tuple[str | None, str]:
    """(tokenizer.ggml.pre the converter will write or None, chkhsh) for an encode function.

    `encode` must behave like the converter's `tokenizer.encode(chktxt)` (special tokens added).
    """
    table = table or converter_table()
    chkhsh = sha256(str(encode(table.chktxt)).encode()).hexdigest()
    return table.names.get(chkhsh), chkhsh


# ---------------------------------------------------------------- make_model.py's steps


def make_hf_tokenizer(name: str, vocab_size: int, hf_dir: Path, model_max_length: int,
                      tokenizer_class: str, log) -> dict:
    """Write the tokenizer files for SPEC tokenizer `name` into hf_dir and check them.

    Checks (ValueError on failure): the vocabulary size, every llama.cpp test vector through
    both the `tokenizers` file and what transformers' AutoTokenizer loads, and the
    pre-tokenizer name convert_hf_to_gguf.py will derive from its chkhsh. Returns the
    manifest's tokenizer record.
    """
    from spm_tokenizer import read_vectors
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    vocab_file = vocab_path(name)
    vocab = read_vocab(vocab_file)
    if len(vocab.tokens) != vocab_size:
        raise ValueError(f"vocab_size {vocab_size} does not match tokenizer {name!r} ({len(vocab.tokens)} tokens)")
    write_hf_files(vocab, hf_dir, model_max_length, tokenizer_class)

    vectors = read_vectors(vocab_file)
    raw = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    raw_failed = _failures(lambda text: raw.encode(text, add_special_tokens=False).ids, vectors)
    log(f"tokenizer.json (tokenizers): {len(vectors) - len(raw_failed)}/{len(vectors)} llama.cpp test vectors matched")
    loaded = AutoTokenizer.from_pretrained(str(hf_dir))
    hf_failed = _failures(lambda text: loaded.encode(text, add_special_tokens=False), vectors)
    log(f"tokenizer.json ({type(loaded).__name__}): {len(vectors) - len(hf_failed)}/{len(vectors)} matched")
    if raw_failed or hf_failed:
        raise ValueError(f"rebuilt tokenizer.json fails test vectors: {(raw_failed or hf_failed)[:5]!r}")

    pre, chkhsh = converter_pre_name(loaded.encode)
    log(f"convert_hf_to_gguf chkhsh {chkhsh} -> tokenizer.ggml.pre {pre!r}")
    if pre != vocab.pre:
        raise ValueError(f"convert_hf_to_gguf.py would name the pre-tokenizer {pre!r} (chkhsh {chkhsh}), "
                         f"the vocab has {vocab.pre!r}")
    return {
        "name": name,
        "kind": "byte-level BPE (tokenizer.json)",
        "source": f"llama.cpp models/{vocab_file.name}",
        "test_vectors": len(vectors),
        "tokenizer_json_matched": len(vectors) - len(hf_failed),
        "test_vectors_matched": len(vectors) - max(len(raw_failed), len(hf_failed)),
        "tokenizer_json": True,
        "tokenizer_class": tokenizer_class,
        "pre_tokenizer": vocab.pre,
        "converter_chkhsh": chkhsh,
        "bos_id": vocab.bos_id,
        "eos_id": vocab.eos_id,
        "add_bos": vocab.add_bos,
        "once_upon_a_time": loaded.encode("Once upon a time"),
    }


def _failures(encode, vectors) -> list[str]:
    return [text for text, ids in vectors if encode(text) != ids]


def check_converted_gguf(name: str, reader: gguf.GGUFReader) -> None:
    """The converter's GGUF carries the same vocabulary as llama.cpp's vocab GGUF (ValueError if not)."""
    vocab = read_vocab(vocab_path(name))

    def get(key: str, default=None):
        field = reader.get_field(key)
        return default if field is None else field.contents()

    expect = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": vocab.pre,
        "tokenizer.ggml.bos_token_id": vocab.bos_id,
        "tokenizer.ggml.eos_token_id": vocab.eos_id,
    }
    for key, want in expect.items():
        got = get(key)
        if got != want:
            raise ValueError(f"GGUF {key} is {got!r}, expected {want!r}")
    # absent means off for this pre-tokenizer in llama.cpp (src/llama-vocab.cpp)
    for key, want in (("tokenizer.ggml.add_bos_token", vocab.add_bos), ("tokenizer.ggml.add_eos_token", vocab.add_eos)):
        got = bool(get(key, False))
        if got != want:
            raise ValueError(f"GGUF {key} is {got!r}, expected {want!r}")
    if [str(t) for t in get("tokenizer.ggml.tokens", [])] != vocab.tokens:
        raise ValueError("GGUF tokenizer.ggml.tokens differ from the vocab's")
    if [int(t) for t in get("tokenizer.ggml.token_type", [])] != vocab.types:
        raise ValueError("GGUF tokenizer.ggml.token_type differ from the vocab's")
    if [tuple(str(m).split(" ")) for m in get("tokenizer.ggml.merges", [])] != vocab.merges:
        raise ValueError("GGUF tokenizer.ggml.merges differ from the vocab's")
