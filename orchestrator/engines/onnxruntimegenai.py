"""ENGINE adapter for onnxruntime-genai: ONNX Runtime's own generation loop over its model builder's graph.

The same IMAGE as the onnxruntime ENGINE (same ONNX Runtime wheel); the container starts
another program: a runner that hands the prompt ids to og.Generator and reads each token id
as onnxruntime-genai's C++ loop chooses it. The formats are made offline by
onnxruntime-genai's model builder from the safetensors (fp32 and int4 for the CPU).
"""

from orchestrator.engines.base import Engine
from orchestrator.engines.onnxruntime import ENGINE as ONNXRUNTIME

ENGINE = Engine(
    name="onnxruntime-genai",
    image_dir=ONNXRUNTIME.image_dir,
    formats=frozenset({"onnx-genai-fp32", "onnx-genai-int4"}),
    description="onnxruntime-genai 0.18 (og.Model + og.Generator, greedy) over the model builder's graph (fused "
                "attention, rotary embeddings, KV cache in the runtime); timed per token in-process.",
    entrypoint=("/opt/venv/bin/python", "/opt/genai/genai_runner.py"),
)
