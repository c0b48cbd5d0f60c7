"""ENGINE adapter for llama.cpp (built from the llama.cpp tree vendored in llama-cpp-python's sdist)."""

from orchestrator.engines.base import Engine

ENGINE = Engine(
    name="llama.cpp",
    image_dir="llama.cpp",
    formats=frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0"}),
    description="llama.cpp C++ runner linked against libllama; greedy decoding timed per token in-process.",
    options={
        "llama_bench": "bool: also run llama-bench on the same cores and record its prefill/decode rates",
        "load_mode": "auto (default) | none | mmap | mlock | mmap+mlock | dio: how llama.cpp loads the weights; "
                     "with mmap, pages already in the page cache are not charged to the cell's cgroup",
        "kv_cache_type": "f16 (default, llama.cpp's own) | f32: the K/V cache precision; f32 makes F32 cells "
                         "comparable token for token with engines that keep the cache in F32",
    },
)
