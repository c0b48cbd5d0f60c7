"""Tokenizer agreement on a real vocabulary: every engine image turns the same texts into the same ids.

SmolLM2-135M-Instruct's GPT-2 byte-level BPE (pre-tokenizer `smollm`, 49152 tokens): llama.cpp
reads it from the original GGUF's metadata; transformers, ONNX Runtime (the `tokenizers`
library) and candle (the `tokenizers` crate) read the tokenizer.json made from that metadata.
Each text is one workload; each runner reports the ids it fed the model (`prompt_token_ids`).
"""

import json

import pytest

from orchestrator.matrix import matrixfile
from orchestrator.models import modelstore
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run

MODEL = "smollm2-135m-instruct"
# Every engine whose IMAGE builds offline here and that reports the ids it fed the model.
# llama-server shares llama.cpp's image and tokenizer library; Ollama returns no token ids;
# Ollama and SmallMind need a container registry (and GitHub) to build.
REAL_ENGINES = ["candle", "llama.cpp", "onnxruntime", "transformers"]
# The smallest file each engine reads: llama.cpp the original Q4_1 GGUF (its own tokenizer,
# from the GGUF metadata); candle also loads it but tokenizes with hf/tokenizer.json.
FORMATS = {"llama.cpp": "gguf-q4_1", "candle": "gguf-q4_1", "onnxruntime": "onnx", "transformers": "safetensors"}
TEXTS = {
    "plain": "The quick brown fox jumps over the lazy dog.",
    "spaces": "  two leading spaces,   three inside,    four before the end    ",
    "single-space": " one leading space",
    "digits": "In 2024, 1234567 people paid $3.14 each (99.9% of 10000) on 2026-11-29 at 23:59.",
    "punctuation": "Wait... what?! \"Quoted\", 'single' (parens) [brackets] {braces}; a:b -- c_d @e #f & g|h \\ i/j ~k",
    "newlines": "line one\nline two\n\n\tindented with a tab\r\nwindows line\n\n\n",
    "non-ascii": "Café naïve façade Ångström Straße — 東京は日本の首都です。 中文测试 Emoji: 😀🎉👍🏽 ünïcödé",
    "contractions": "I'm sure they'll say it's what we've done, isn't it? You'd've known.",
    "code": "def f(x):\n    return x ** 2  # square\n\nprint(f(3))",
    "paragraph": (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
        "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
        "everything before us, we had nothing before us, we were all going direct to Heaven, we were all "
        "going direct the other way - in short, the period was so far like the present period, that some of "
        "its noisiest authorities insisted on its being received, for good or for evil, in the superlative "
        "degree of comparison only. There were 2 kings & 2 queens; in 1775 the year's events were many."),
}
DEFAULT_PROMPT = {"name": "default", "prompt": "Once upon a time", "prompt_tokens": 64, "gen_tokens": 2}


@pytest.fixture(scope="module")
def smollm(docker, logs_dir):
    return modelstore.prepare(docker, MODEL, sorted(set(FORMATS.values())), logs_dir)


def test_every_engine_tokenizes_the_real_vocabulary_identically(tmp_path, smollm, no_leftovers):
    workloads = [{"name": name, "prompt": text, "gen_tokens": 2} for name, text in TEXTS.items()] + [DEFAULT_PROMPT]
    document = {
        "version": 1,
        "engines": [{"name": name} for name in REAL_ENGINES],
        "models": [{"id": MODEL, "formats": sorted({FORMATS[e] for e in REAL_ENGINES})}],
        "threads": [1],
        "workloads": workloads,
        "include": [{"engine": engine, "format": FORMATS[engine]} for engine in REAL_ENGINES],
        "warmup": 0,
        "repetitions": 1,
        "memory_limit": "3g",
        "timeout_s": 300,
    }
    run_dir = execute_run(matrixfile.parse(json.dumps(document), "tokenizers.yaml"), tmp_path, lambda _: None)
    _run, records = read_run(run_dir)
    ids: dict[str, dict[str, list[int]]] = {}
    for record in records:
        cell = record["cell"]
        assert record["status"] == "ok", (cell, record["reason"], record["log_tail"])
        ids.setdefault(cell["workload"]["name"], {})[cell["engine"]] = record["result"]["prompt_token_ids"]
    assert set(ids) == set(TEXTS) | {"default"}
    for name, by_engine in ids.items():
        assert set(by_engine) == set(REAL_ENGINES), name
        reference = by_engine["llama.cpp"]
        for engine, got in by_engine.items():
            assert got == reference, f"{name!r}: {engine} {got} != llama.cpp {reference}"
    # No BOS is added for this vocabulary, and byte-level BPE keeps every byte: no unknown tokens.
    assert ids["plain"]["llama.cpp"][0] != 1 and len(ids["default"]["llama.cpp"]) == 64
    assert all(0 not in by_engine["llama.cpp"] for by_engine in ids.values())
    assert len(ids["paragraph"]["llama.cpp"]) > 150
