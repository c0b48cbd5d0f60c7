"""ENGINE adapter for Hugging Face transformers on PyTorch (CPU, fp32)."""

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

ENGINE = Engine(
    name="transformers",
    image_dir="transformers",
    formats=frozenset({"safetensors"}),
    workloads=frozenset({"generate", "perplexity"}),
    description="transformers AutoModelForCausalLM in fp32 on PyTorch's CPU backend; greedy loop with the KV cache, "
                "timed per token in-process.",
    options=declare({
        "reference": {"type": "boolean", "default": False,
                      "description": "also time transformers' own model.generate() on the same prompt, model and "
                                     "threads, between two blocks of ours (ABA; benchmarks/fidelity.py reads it)"},
        "omp_wait_policy": {"enum": ["default", "active", "passive"], "default": "default",
                            "description": "OpenMP's wait policy (OMP_WAIT_POLICY); default leaves it unset"},
    }),
)
