"""Rebuild a SentencePiece tokenizer from a llama.cpp vocab GGUF and read its test vectors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gguf
from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as spm_pb2

# Where the Dockerfile puts llama.cpp's vocab files; overridable for runs outside the image.
LLAMA_CPP_DIR = Path(os.environ.get("MODELMAKER_LLAMA_CPP", "/opt/llama.cpp"))

# SPEC "tokenizer" value -> vocab GGUF shipped in llama.cpp's models/ folder.
VOCABS = {"llama-spm": "ggml-vocab-llama-spm.gguf"}

# llama.cpp's test files separate cases with this line (tests/test-tokenizer-0.cpp).
VECTOR_SEPARATOR = "\n__ggml_vocab_test__\n"


@dataclass(frozen=True)
class SpmVocab:
    """What a SentencePiece model needs from the GGUF: pieces, scores, types, special ids."""

    pieces: list[str]
    scores: list[float]
    types: list[int]
    unk_id: int
    bos_id: int
    eos_id: int
    add_bos: bool
    add_eos: bool


def vocab_path(name: str) -> Path:
    """The vocab GGUF for a SPEC tokenizer name."""
    if name not in VOCABS:
        raise ValueError(f"unknown tokenizer {name!r}; known: {sorted(VOCABS)}")
    return LLAMA_CPP_DIR / "models" / VOCABS[name]


def _field(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    if field is None:
        raise ValueError(f"{key} missing from vocab GGUF")
    return field.contents()


def read_vocab(path: Path) -> SpmVocab:
    """Read a SentencePiece ('llama') vocabulary from a vocab-only GGUF."""
    reader = gguf.GGUFReader(path)
    model = _field(reader, "tokenizer.ggml.model")
    if model != "llama":
        raise ValueError(f"{path}: tokenizer model {model!r} is not SentencePiece ('llama')")
    pieces = list(_field(reader, "tokenizer.ggml.tokens"))
    scores = [float(s) for s in _field(reader, "tokenizer.ggml.scores")]
    types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type")]
    if not len(pieces) == len(scores) == len(types):
        raise ValueError(f"{path}: tokens, scores and types differ in length")
    return SpmVocab(
        pieces=pieces,
        scores=scores,
        types=types,
        unk_id=int(_field(reader, "tokenizer.ggml.unknown_token_id")),
        bos_id=int(_field(reader, "tokenizer.ggml.bos_token_id")),
        eos_id=int(_field(reader, "tokenizer.ggml.eos_token_id")),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token")),
        add_eos=bool(_field(reader, "tokenizer.ggml.add_eos_token")),
    )


def build_model_proto(vocab: SpmVocab) -> bytes:
    """Serialise a Llama-2 style BPE SentencePiece model for the vocabulary.

    GGUF token types use SentencePiece's own numbering (1 normal, 2 unknown, 3 control,
    4 user-defined, 5 unused, 6 byte), so they are copied as they are.
    """
    proto = spm_pb2.ModelProto()
    for piece, score, kind in zip(vocab.pieces, vocab.scores, vocab.types):
        entry = proto.pieces.add()
        entry.piece = piece
        entry.score = score
        entry.type = kind

    trainer = proto.trainer_spec
    trainer.model_type = spm_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(vocab.pieces)
    trainer.byte_fallback = True
    trainer.split_digits = True
    # Encoding reads these two: runs of spaces form one word (" " -> "▁▁").
    trainer.allow_whitespace_only_pieces = True
    trainer.treat_whitespace_as_suffix = False
    trainer.unk_id = vocab.unk_id
    trainer.bos_id = vocab.bos_id
    trainer.eos_id = vocab.eos_id
    trainer.pad_id = -1
    trainer.unk_piece = vocab.pieces[vocab.unk_id]
    trainer.bos_piece = vocab.pieces[vocab.bos_id]
    trainer.eos_piece = vocab.pieces[vocab.eos_id]

    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    normalizer.precompiled_charsmap = b""
    return proto.SerializeToString(deterministic=True)


def load_processor(model_file: Path) -> SentencePieceProcessor:
    """A SentencePiece processor for a tokenizer.model file."""
    processor = SentencePieceProcessor()
    processor.LoadFromFile(str(model_file))
    return processor


def read_vectors(gguf_path: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test cases beside a vocab GGUF: (text, ids without BOS).

    Parsed as tests/test-tokenizer-0.cpp does: the .inp text split on the separator
    line (a trailing separator ends the last case, it does not start an empty one),
    one line of space-separated ids per case in .out.
    """
    raw = Path(f"{gguf_path}.inp").read_text(encoding="utf-8")
    lines = Path(f"{gguf_path}.out").read_text(encoding="utf-8").splitlines()
    texts = raw.split(VECTOR_SEPARATOR)
    if raw.endswith(VECTOR_SEPARATOR):
        texts.pop()
    if len(texts) != len(lines):
        raise ValueError(f"{gguf_path}: {len(texts)} inputs but {len(lines)} outputs")
    return [(text, [int(tok) for tok in line.split()]) for text, line in zip(texts, lines)]
