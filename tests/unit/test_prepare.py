"""`orchestrate prepare`: what `run` does before its first CELL (IMAGEs, models, texts), for a CI build job."""

from pathlib import Path

import pytest

from orchestrator import cli, run
from orchestrator.matrix import matrixfile
from orchestrator.plan import planner

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "matrices" / "ci-smoke.yaml")
DEFAULT = str(ROOT / "matrix.yaml")


def test_prepare_builds_then_reports_images_then_makes_models_and_texts(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(run, "Docker", lambda: "docker")

    def build(docker, cells, logs_dir, progress, record, platform=None):
        calls.append(("images", sorted({c.engine for c in cells})))
        record["images"]["llama.cpp"] = {"tag": "orchestrate/llama.cpp:abc", "id": "sha256:1"}
        return {}, {}

    def models(docker, cells, logs_dir, progress, record):
        calls.append(("models", sorted({(c.model, c.format) for c in cells})))
        record["models"]["m/f"] = {"sha256": "0" * 64, "size": 1, "path": "/store/m/f"}
        return {}

    monkeypatch.setattr(run, "_build_images", build)
    monkeypatch.setattr(run, "_prepare_models", models)
    monkeypatch.setattr(run, "_prepare_texts", lambda *args: calls.append(("texts",)))
    matrices = [matrixfile.load(DEFAULT), matrixfile.load(SMOKE)]
    done = run.prepare(matrices, tmp_path, lambda line: None, lambda images: calls.append(("ready", dict(images))))
    assert [c[0] for c in calls] == ["images", "ready", "models", "texts"]
    every = [c for m in matrices for c in planner.expand(m)]
    assert calls[0][1] == sorted({c.engine for c in every})
    assert ("tinystories-15m", "gguf-q8_0") in calls[2][1]  # the smoke CELL's model too
    assert done["models"] == {"m/f": {"sha256": "0" * 64, "size": 1, "path": "/store/m/f"}}


def fake_prepare(images):
    def prepare(matrices, logs_dir, progress, images_ready):
        images_ready(images)
        return {"images": images, "models": {"smollm2/gguf-f32": {"sha256": "ab", "size": 2, "path": "/s/f.gguf"}},
                "texts": {"smollm2/kjv": {"ids_sha256": "cd", "path": "/s/ids.json"}}}
    return prepare


def test_prepare_prints_each_image_tag_once_then_models(monkeypatch, capsys):
    images = {"llama.cpp": {"tag": "orchestrate/llama.cpp:abc"}, "llama-server": {"tag": "orchestrate/llama.cpp:abc"},
              "onnxruntime": {"tag": "orchestrate/onnxruntime:def"}}
    monkeypatch.setattr(run, "prepare", fake_prepare(images))
    assert cli.main(["prepare", DEFAULT, SMOKE]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "image orchestrate/llama.cpp:abc", "image orchestrate/onnxruntime:def",
        "model smollm2/gguf-f32 ab /s/f.gguf", "text smollm2/kjv cd /s/ids.json"]


def test_an_image_that_cannot_be_built_is_named_and_exits_3_after_the_rest(monkeypatch, capsys):
    images = {"llama.cpp": {"tag": "orchestrate/llama.cpp:abc"},
              "ollama": {"tag": "orchestrate/ollama:123", "id": "", "error": "the base image cannot be pulled"}}
    monkeypatch.setattr(run, "prepare", fake_prepare(images))
    assert cli.main(["prepare", DEFAULT]) == 3
    out, err = capsys.readouterr()
    assert "image orchestrate/llama.cpp:abc" in out and "ollama" not in out
    assert "1 IMAGE(s) cannot be built here" in err and "ollama: the base image cannot be pulled" in err


def test_prepare_needs_a_matrix():
    with pytest.raises(SystemExit):
        cli.main(["prepare"])
