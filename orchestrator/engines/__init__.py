"""ENGINE adapters: one small module per inference framework, registered in one table.

An adapter says which IMAGE folder builds the engine, which model formats it reads and
how the job file names the model. Runners inside the images speak only the JSON
contract (docs/contract.md); they never import this package.
"""

from __future__ import annotations

from orchestrator.engines import (
    candle,
    llamacpp,
    llamaserver,
    ollama,
    onnxruntime,
    onnxruntimegenai,
    smallmind,
    testengine,
    transformers,
)
from orchestrator.engines.base import Engine

__all__ = ["ENGINES", "Engine"]

ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        llamacpp.ENGINE,
        llamaserver.ENGINE,
        ollama.ENGINE,
        smallmind.ENGINE,
        candle.ENGINE,
        onnxruntime.ENGINE,
        onnxruntimegenai.ENGINE,
        transformers.ENGINE,
        testengine.ENGINE,
    )
}
