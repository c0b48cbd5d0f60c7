"""ENGINE adapter for ONNX Runtime (CPU execution provider), driven by a Python greedy loop."""

from orchestrator.engines.base import Engine
from orchestrator.engines.options import declare

ENGINE = Engine(
    name="onnxruntime",
    image_dir="onnxruntime",
    formats=frozenset({"onnx"}),
    workloads=frozenset({"generate", "perplexity"}),
    description="ONNX Runtime CPU session over the ONNX export with a KV cache; greedy loop in Python with numpy, "
                "timed per token in-process.",
    below_best="our greedy loop in Python over a torch.onnx.export graph is slower than ONNX Runtime's own "
               "generation path on the same weights: see the onnxruntime-genai ENGINE (onnx-genai-* formats) and "
               "docs/fidelity.md",
    options=declare({
        "allow_spinning": {"type": "boolean", "default": False,
                           "description": "let ONNX Runtime's intra-op workers spin-wait between ops"},
        "graph_optimization_level": {"enum": ["disable", "basic", "extended", "all"], "default": "all",
                                     "description": "ONNX Runtime's graph optimizations (SessionOptions."
                                                    "graph_optimization_level)"},
    }),
)
