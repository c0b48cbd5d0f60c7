"""ENGINE adapter for llama-server: llama.cpp behind its HTTP API, timed at the client (server-api boundary).

The same IMAGE as the llama.cpp ENGINE (same pinned llama.cpp tree, same CPU variants);
only the program the container starts differs: a Python runner that starts llama-server
on loopback inside the container and streams completions from it. Side by side with
llama.cpp on the same cores and model, the difference is the cost of the HTTP boundary.
"""

from orchestrator.engines.base import Engine
from orchestrator.engines.llamacpp import ENGINE as LLAMA_CPP
from orchestrator.engines.options import declare

ENGINE = Engine(
    name="llama-server",
    image_dir=LLAMA_CPP.image_dir,
    formats=LLAMA_CPP.formats,
    description="llama.cpp's llama-server on 127.0.0.1 in the container; prompt as token ids, greedy, streamed "
                "/completion with the prompt cache off; TTFT and inter-token latencies timed at the HTTP client, "
                "the server's own timings beside them.",
    options=declare({
        "kv_cache_type": {"enum": ["f16", "f32"], "default": "f16",
                          "description": "the K/V cache precision (-ctk/-ctv; f16 is llama.cpp's own default), as "
                                         "the llama.cpp ENGINE's option of the same name"},
    }),
    entrypoint=("python3", "/opt/server/server_runner.py"),
)
