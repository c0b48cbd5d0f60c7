"""ENGINE adapter for SmallMind: the pure C# (.NET 10) inference engine, through its public API, in process.

The IMAGE builds a small C# runner with the official .NET SDK image and SmallMind's source
(pinned commit from GitHub, or a local checkout: images/smallmind/README.md), so it needs
a registry and GitHub, or their local stand-ins, to build.
"""

from orchestrator.engines.base import Engine

ENGINE = Engine(
    name="smallmind",
    image_dir="smallmind",
    formats=frozenset({"gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0"}),
    description="SmallMind (C#, .NET 10) through SmallMind.Public: SmallMindFactory.Create with GGUF import, a "
                "text-generation session, GenerateStreaming timed per token id in process; greedy through top-k 1 "
                "and a fixed seed. SmallMind's ThreadCount is recorded as set; threads used are counted from the "
                "process's per-thread CPU.",
    tmpfs_size="2g",
)
