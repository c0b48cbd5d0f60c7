"""ENGINE adapter for Hugging Face transformers on PyTorch (CPU, fp32)."""

from orchestrator.engines.base import Engine

ENGINE = Engine(
    name="transformers",
    image_dir="transformers",
    formats=frozenset({"safetensors"}),
    description="transformers AutoModelForCausalLM in fp32 on PyTorch's CPU backend; greedy loop with the KV cache, "
                "timed per token in-process.",
    options={"omp_wait_policy": "default | active | passive: OpenMP's wait policy (OMP_WAIT_POLICY)"},
)
