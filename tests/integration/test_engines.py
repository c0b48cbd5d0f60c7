"""Every real ENGINE: its image builds, a small CELL runs through the real orchestrator, engines agree."""

from orchestrator import schemas
from orchestrator.engines import ENGINES
from orchestrator.matrix import matrixfile
from orchestrator.results.recordfiles import read_run
from orchestrator.run import execute_run

# Quantized llama.cpp formats are here on purpose: they take the CPU paths (AMX on some
# Xeons) that a native build once crashed on (SIGILL), while F32 ran. Ollama and SmallMind
# need a container registry to build: tests/integration/test_engines_registry.py covers them.
FORMATS = {"llama.cpp": ["gguf-f32", "gguf-q8_0", "gguf-q4_0"], "llama-server": ["gguf-f32"], "onnxruntime": ["onnx"],
           "onnxruntime-genai": ["onnx-genai-fp32", "onnx-genai-int4"], "transformers": ["safetensors"],
           "candle": ["safetensors", "gguf-q8_0", "gguf-q4_0"]}
REAL_ENGINES = sorted(FORMATS)
NEEDS_REGISTRY = {"ollama", "smallmind"}


def test_every_real_engine_is_run_here_or_needs_a_registry():
    real = {name for name, engine in ENGINES.items() if not engine.test_only}
    assert real == set(REAL_ENGINES) | NEEDS_REGISTRY


def test_every_engine_runs_a_cell_and_agrees_with_llamacpp(tmp_path, tinystories_all, no_leftovers):
    formats = sorted({f for engine in REAL_ENGINES for f in FORMATS[engine]})
    # transformers also times its own generate() between two blocks of ours (the fidelity benchmark's reference)
    options = {"transformers": "\n    options: {reference: true}"}
    engines = "\n".join(f"  - name: {name}{options.get(name, '')}" for name in REAL_ENGINES)
    text = f"""\
version: 1
engines:
{engines}
models:
  - id: tinystories-15m
    formats: [{", ".join(formats)}]
threads: [1, 2]
workloads:
  - {{name: w, prompt: "Once upon a time", prompt_tokens: 16, gen_tokens: 40}}
include:
  - {{threads: 1}}
  - {{threads: 2, engine: [llama.cpp, onnxruntime], format: [gguf-f32, onnx]}}
warmup: 1
repetitions: 2
memory_limit: 3g
timeout_s: 300
"""
    run_dir = execute_run(matrixfile.parse(text, "engines.yaml"), tmp_path, lambda _: None)
    run, records = read_run(run_dir)
    assert {r["cell"]["engine"] for r in records} == set(REAL_ENGINES)
    for record in records:
        assert record["status"] == "ok", (record["cell"], record["reason"], record["log_tail"])
        result = record["result"]
        assert schemas.problems("result", result) == []
        assert record["threads"]["used"] == record["cell"]["threads"] and result["threads"]["per_thread"]
        assert result["prompt_token_ids"][:5] == [1, 9038, 2501, 263, 931]
        assert result["engine"]["name"] == record["cell"]["engine"]
        assert result["measurement_boundary"] in ("in-process", "server-api")
        # Every engine says which CPU code path ran (or could run), in plain words.
        assert result["engine"]["build"]["cpu_path"]["summary"], result["engine"]["build"]
        if record["cell"]["engine"] == "transformers":  # generate() chose the same tokens as our loop
            reference = result["extra"]["reference"]
            assert reference["same_tokens"], reference["first_difference"]
            assert [r["generated_tokens"] for r in reference["repetitions"]] == [40, 40]
            assert reference["repetitions"][0]["token_ids"] == result["repetitions"][0]["token_ids"]
            assert all(r["gen_tok_s"] > 0 for r in reference["repetitions"] + reference["second_a"])
        if record["cell"]["engine"] == "llama.cpp":
            cpu_path = result["engine"]["build"]["cpu_path"]
            assert cpu_path["library"].startswith("/usr/local/lib/ggml/libggml-cpu-") and not cpu_path["amx"]
    import json

    rows = json.loads((run_dir / "tables" / "cells.json").read_text())
    full = [r for r in rows if r["format"] in ("gguf-f32", "safetensors", "onnx", "onnx-genai-fp32")]
    assert [r["agreement"] for r in full].count("reference") == 1
    for row in full:
        assert row["agreement"] in ("reference", "ok"), row
        assert row["agreement"] == "reference" or row["agreement_tokens"] >= 32
