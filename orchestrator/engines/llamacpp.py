"""ENGINE adapter for llama.cpp (built from the llama.cpp tree vendored in llama-cpp-python's sdist)."""

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

ENGINE = Engine(
    name="llama.cpp",
    image_dir="llama.cpp",
    formats=frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1"}),
    workloads=frozenset({"generate", "perplexity"}),
    description="llama.cpp C++ runner linked against libllama; greedy decoding timed per token in-process.",
    options=declare({
        "llama_bench": {"type": "boolean", "default": False,
                        "description": "also run llama-bench on the same cores and record its prefill/decode rates"},
        "load_mode": {"enum": ["auto", "none", "mmap", "mlock", "mmap+mlock", "dio"], "default": "auto",
                      "description": "how llama.cpp loads the weights; with mmap, pages already in the page cache "
                                     "are not charged to the cell's cgroup"},
        "kv_cache_type": {"enum": ["f16", "f32"], "default": "f16",
                          "description": "the K/V cache precision (f16 is llama.cpp's own default); f32 makes F32 "
                                         "cells comparable token for token with engines that keep the cache in F32"},
    }),
)
