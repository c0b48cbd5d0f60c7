"""ENGINE adapter for candle (Hugging Face's Rust ML framework): its Llama and quantized Llama models."""

from orchestrator.engines.base import Engine

ENGINE = Engine(
    name="candle",
    image_dir="candle",
    formats=frozenset({"safetensors", "gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1"}),
    workloads=frozenset({"generate", "perplexity"}),
    description="Rust runner on candle 0.9.1: models::llama for safetensors (F32), models::quantized_llama for GGUF; "
                "greedy decoding timed per token in-process.",
)
