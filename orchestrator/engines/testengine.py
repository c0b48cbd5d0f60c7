"""ENGINE adapter for the test double: a tiny runner that misbehaves on request.

It exists to drive pipeline tests (OOM, timeout, crash, invalid result). It runs no
model and its rows are labelled as a test double in every TABLE.
"""

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

BEHAVIOURS = ("ok", "oom", "sleep", "crash", "invalid", "threads-mismatch", "lax", "lie-threads")

ENGINE = Engine(
    name="testengine",
    image_dir="testengine",
    formats=frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "safetensors"}),
    workloads=frozenset({"generate", "perplexity"}),
    description="TEST DOUBLE for pipeline tests; not an inference engine.",
    test_only=True,
    options=declare({
        "behaviour": {"enum": list(BEHAVIOURS), "default": "ok",
                      "description": "how the double behaves: ok, or one way to fail (oom, sleep, crash, invalid, "
                                     "threads-mismatch: one busy thread too many); broken runners the conformance "
                                     "suite must catch: lax (accepts any job), lie-threads (claims the requested "
                                     "threads, runs one)"},
    }),
)
