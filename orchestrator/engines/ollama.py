"""ENGINE adapter for Ollama: the official Ollama server, driven through its HTTP API (server-api boundary).

The IMAGE starts from the official Ollama image pinned by version and digest; it needs a
container registry to build (images/ollama/README.md says how to provide the image where
none is reachable, and cites Ollama's source for every request and check the runner makes).
The runner imports the CELL's GGUF file with a Modelfile into Ollama's own store under /tmp
(a copy: hence the larger tmpfs, charged to the CELL's memory limit) and streams
/api/generate with num_thread = the CELL's threads.
"""

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

ENGINE = Engine(
    name="ollama",
    image_dir="ollama",
    formats=frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1"}),
    description="Ollama server on 127.0.0.1 in the container (it runs llama-server); the store's GGUF imported "
                "with a Modelfile; per repetition: unload, /api/ps polled until it is gone, untimed preload, "
                "then one raw /api/generate streamed without logprobs, num_thread = threads, greedy "
                "(temperature 0, top_k 1, repeat_penalty 1), stop strings cleared, context shift and prompt "
                "truncation off, num_ctx with headroom; a load inside the timed request is refused. Tokens "
                "from eval_count; TTFT and inter-token latencies at the client. Ollama cannot ignore "
                "end-of-sequence, stops on 31 repeated tokens and returns no token ids: short generations "
                "are marked, agreement is approximate (re-tokenized text).",
    options=declare({
        "num_ctx": {"type": "integer", "default": 0,
                    "description": "Ollama's context size; 0: prompt + generated tokens of the CELL + 64 "
                                   "(at most the model's context length); a size without a free slot beyond "
                                   "the CELL's tokens is refused"},
    }),
    tmpfs_size="3g",
)
