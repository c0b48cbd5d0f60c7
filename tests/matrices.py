"""MATRIX texts for integration tests: one tiny workload on tinystories-15m, engines and limits as asked."""


def tiny(engines: list[str], formats: str = "[gguf-q8_0]", warmup: int = 1, repetitions: int = 2,
         memory_limit: str = "256m", timeout_s: int = 30) -> str:
    """A MATRIX of ``engines`` (YAML list items, e.g. "llama.cpp" or "testengine\\n    options: {...}")
    x tinystories-15m in ``formats`` x 1 thread x a 16-token prompt and 16 generated tokens."""
    listed = "".join(f"  - name: {engine}\n" for engine in engines)
    return (f"version: 1\nengines:\n{listed}models:\n  - id: tinystories-15m\n    formats: {formats}\n"
            "threads: [1]\nworkloads:\n  - {name: tiny, prompt: \"Once upon a time\", prompt_tokens: 16, "
            f"gen_tokens: 16}}\nwarmup: {warmup}\nrepetitions: {repetitions}\nmemory_limit: {memory_limit}\n"
            f"timeout_s: {timeout_s}\n")
