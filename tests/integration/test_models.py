"""Models made offline in pinned containers: identical bytes in a second store, real tokenizers."""

import json

from orchestrator.host.dockerapi import Mount
from orchestrator.images import imagebuild
from orchestrator.models import modelstore

FORMATS = ["safetensors", "gguf-f32", "gguf-q8_0", "gguf-q4_0", "onnx", "onnx-genai-fp32", "onnx-genai-int4"]


def test_a_second_empty_store_gets_identical_files(docker, logs_dir, tmp_path, tinystories_all):
    first = modelstore.prepare(docker, "tinystories-15m", FORMATS, logs_dir)
    second = modelstore.prepare(docker, "tinystories-15m", FORMATS, logs_dir, lambda _: None, root=tmp_path / "store")
    for fmt in FORMATS:
        assert first[fmt].sha256 == second[fmt].sha256, fmt
    folder = second["gguf-f32"].folder
    assert modelstore.verify(folder) == []
    manifest = modelstore.manifest(folder)
    assert manifest["files"]["gguf-q8_0"]["parent"]["format"] == "gguf-f32"
    assert manifest["files"]["gguf-f32"]["parent"]["format"] == "safetensors"
    report = manifest["files"]["safetensors"]["maker_report"]
    assert report["parameters"] == 15_191_712
    assert report["greedy_check"]["distinct"] >= 32
    (folder / "gguf" / "model-q4_0.gguf").write_bytes(b"not a model")
    assert any("model-q4_0.gguf" in p for p in modelstore.verify(folder))


def test_every_llama_tokenizer_passes_llamacpps_test_vectors(docker, logs_dir, tinystories_all):
    """tokenizer.model (SentencePiece) and tokenizer.json (through transformers) against llama.cpp's vectors."""
    maker = imagebuild.ensure(docker, "modelmaker", logs_dir)
    folder = tinystories_all["safetensors"].folder
    done = docker.run_tool(maker.tag, ["python3", "/opt/modelmaker/check_tokenizer.py", "--tokenizer",
                                       "/models/hf/tokenizer.model", "--transformers"],
                           (Mount(str(folder), "/models"),), "65534:65534", "orchestrate-test-tokenizer",
                           {"orchestrate.test": "1"})
    assert done.exit_code == 0, done.log
    found = json.loads(next(line for line in reversed(done.log.splitlines()) if line.startswith("{")))
    assert found["total"] == 46 and found["matched"] == 46, found["mismatches"]
    assert found["transformers"]["matched"] == found["transformers"]["total"] == 46
    assert found["once_upon_a_time"] == [1, 9038, 2501, 263, 931]
