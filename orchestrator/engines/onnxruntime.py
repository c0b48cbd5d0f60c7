"""ENGINE adapter for ONNX Runtime (CPU execution provider), driven by a Python greedy loop."""

from orchestrator.engines.base import Engine

ENGINE = Engine(
    name="onnxruntime",
    image_dir="onnxruntime",
    formats=frozenset({"onnx"}),
    description="ONNX Runtime CPU session over the ONNX export with a KV cache; greedy loop in Python with numpy, "
                "timed per token in-process.",
    options={"allow_spinning": "bool (default false): let ORT's intra-op workers spin while waiting"},
)
