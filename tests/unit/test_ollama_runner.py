"""The Ollama runner's measuring loop (images/ollama/runner.py) against the TEST DOUBLE of Ollama's API.

The runner kit is assembled for the ollama IMAGE as the orchestrator does; `ollama serve` is replaced by
the double (tests/unit/ollama_double.py), the model's tokenizer by a stand-in that splits on spaces. The
RESULT it writes is then judged by the orchestrator's own checks.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from orchestrator import schemas
from orchestrator.images import imagebuild
from orchestrator.results import judge
from tests.unit.ollama_double import OllamaDouble, Script

OLLAMA_DIR = imagebuild.IMAGES_DIR / "ollama"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """images/ollama/runner.py, imported with the runner kit assembled for the ollama IMAGE."""
    root = tmp_path_factory.mktemp("engine")
    for rel, content, _ in imagebuild.shared_files("ollama", (OLLAMA_DIR / "Dockerfile").read_text()):
        if rel.startswith("_shared/runnerkit/"):
            target = root / "runnerkit" / rel.split("/", 2)[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    stale = {n: sys.modules.pop(n) for n in list(sys.modules) if n == "runnerkit" or n.startswith("runnerkit.")}
    sys.path[:0] = [str(root), str(OLLAMA_DIR)]
    try:
        spec = importlib.util.spec_from_file_location("ollama_runner", OLLAMA_DIR / "runner.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(root))
        sys.path.remove(str(OLLAMA_DIR))
        for name in [n for n in sys.modules if n == "runnerkit" or n.startswith("runnerkit.")]:
            del sys.modules[name]
        sys.modules.update(stale)


class Words:
    """Stand-in for the model's tokenizer: one id per space-separated word."""

    class Encoding:
        def __init__(self, ids):
            self.ids = ids

    def encode(self, text, add_special_tokens=False):
        return self.Encoding([len(word) for word in text.split()])


def cell(runner, tmp_path, gen_tokens=6, repetitions=2):
    job = runner.jobs.Job("c-000000000001", "ollama", {}, "m", "gguf-f32", "/models/gguf/model.gguf", None, 2,
                          "Once", 8, gen_tokens, 1, repetitions, str(tmp_path))
    return job, {"schema_version": 1, "run_id": "r", "cell_id": job.cell_id, "engine": {"name": "ollama",
                 "options": {}}, "model": {"id": "m", "format": "gguf-f32", "path": job.model_path,
                 "sha256": "0" * 64, "tokenizer": None}, "threads": 2,
                 "workload": {"name": "w", "prompt": "Once", "prompt_tokens": 8, "gen_tokens": gen_tokens},
                 "warmup": 1, "repetitions": repetitions, "output_dir": str(tmp_path)}


def measure(runner, tmp_path, monkeypatch, script, gen_tokens=6):
    job, job_document = cell(runner, tmp_path, gen_tokens)
    log = tmp_path / "ollama-serve.log"
    log.write_text("")
    monkeypatch.setattr(runner, "SERVER_LOG", log)
    ids = list(range(8))
    with OllamaDouble(script) as double:
        client = runner.ollamaclient.Client(double.port)
        opts = runner.cell_options(job, len(ids), 8192)
        client.load(runner.MODEL_NAME, opts)
        document = runner.measure(job, client, type("Serve", (), {"pid": os.getpid()})(), ids, "p", 1, opts,
                                  "0.33.1-test-double", 0.1, Words(), {"model_info": {}})
    schemas.check("result", document, "the Ollama runner's RESULT")
    return document, job_document, double


def test_a_repetition_cut_by_ollamas_repeat_limit_is_recorded_not_fatal(runner, tmp_path, monkeypatch):
    script = Script(tokens=[(0.001, " a")] * 40, prompt_eval_count=8, prefill_s=0.002)
    document, job, _ = measure(runner, tmp_path, monkeypatch, script, gen_tokens=64)
    reps = document["repetitions"]
    assert [r["generated_tokens"] for r in reps] == [31, 31]  # " a" then 30 repeats, no final chunk
    assert [s["stop"] for s in document["extra"]["short_repetitions"]] == ["repeat-limit", "repeat-limit"]
    status, reason, _ = judge.judge(job, 0, False, False, "", _written(document, tmp_path))
    assert status.name == "INVALID" and "31 tokens generated" in reason


def test_a_whole_generation_counts_the_tokens_ollama_streamed_no_chunk_for(runner, tmp_path, monkeypatch):
    tokens = [(0.002, " x"), (0.002, b"\xc3"), (0.002, b"\xa9"), (0.002, " y"), (0.002, " z"), (0.002, " w")]
    document, job, double = measure(runner, tmp_path, monkeypatch, Script(tokens=tokens, prompt_eval_count=8,
                                                                                  prefill_s=0.002))
    rep = document["repetitions"][0]
    assert rep["generated_tokens"] == 6 and len(rep["inter_token_latencies_s"]) == 5
    assert document["extra"]["ollama"][0]["unseen_tokens"] == 1
    assert document["extra"]["options"]["stop"] == [] and document["extra"]["options"]["num_ctx"] == 8 + 6 + 64
    assert double.loads == 4  # the first load, then one preload per repetition (1 warmup + 2 timed)
    _, reason, _ = judge.judge(job, 0, False, False, "", _written(document, tmp_path))
    assert "inter-token latencies" not in (reason or "")  # one latency per token after the first
    # the re-tokenized text (" xé y z w": 4 words for the stand-in) is not the 6 ids Ollama decoded: token ids
    # stay approximate, as documented
    assert [len(r["token_ids"]) for r in document["repetitions"]] == [4, 4]


def test_a_prompt_ollama_evaluated_differently_is_flagged(runner, tmp_path, monkeypatch):
    document, job, _ = measure(runner, tmp_path, monkeypatch, Script(tokens=[(0.002, f" t{i}") for i in range(6)],
                                                                     prompt_eval_count=9, prefill_s=0.002))
    assert [r["prompt_tokens"] for r in document["repetitions"]] == [9, 9]
    assert "evaluated 9 prompt tokens" in document["extra"]["ollama"][0]["prompt_mismatch"]
    status, reason, _ = judge.judge(job, 0, False, False, "", _written(document, tmp_path))
    assert status.name == "INVALID" and "prompt has 9 tokens, 8 asked for" in reason


def _written(document, tmp_path) -> Path:
    path = tmp_path / "result.json"
    path.write_text(__import__("json").dumps(document))
    return path


def test_an_engine_num_ctx_without_a_free_slot_is_refused_and_the_default_has_headroom(runner, tmp_path):
    job, _ = cell(runner, tmp_path, gen_tokens=6)
    assert runner.cell_options(job, 8, 8192)["num_ctx"] == 8 + 6 + 64
    small = dataclasses.replace(job, options={"num_ctx": 14})
    with pytest.raises(runner.jobs.JobError, match="engine option num_ctx 14 cannot hold"):
        runner.cell_options(small, 8, 8192)
