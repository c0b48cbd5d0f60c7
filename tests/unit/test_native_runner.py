"""The native-runner protocol (runnerkit.native + runnerkit.child) and the Python halves of the llama.cpp
and candle IMAGEs, against a stand-in for the C++/Rust runner.

The stand-in speaks the protocol (docs/contract.md, "Native runners") with made-up ids and times and
keeps a thread busy while it "generates", so these tests check the requests, the kit's steps, the
per-thread CPU of the child and the RESULT's shape, never an engine's speed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys

import pytest

from orchestrator import schemas
from orchestrator.images import imagebuild

FAKE = """\
#!{python}
import json, sys, time
def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
def reply(**event):
    print("@orchestrate " + json.dumps(event), flush=True)
print("native engine chatter on stdout", flush=True)
loaded = None
for line in sys.stdin:
    request = json.loads(line)
    op = request["op"]
    if op == "quit":
        break
    if op == "load":
        if "{fail}" == "load":
            reply(event="error", op=op, error="failed to load model " + request["model"])
            continue
        loaded = request
        reply(event="load", load_s=0.5, model_s=0.4, context_length=256, model_context_length=256,
              vocab_size=100, engine={{"version": "9.9", "build": {{"cpu_path": {{"summary": "fake path"}},
                                                                    "system_info": "CPU : AVX = 1 | SSE3 = 0 |"}}}},
              model={{"desc": "fake"}}, tokenizer={{"path": "tok.json", "load_s": 0.1, "add_bos_token": True,
                                                    "add_bos_token_source": "test", "bos_id": 1}})
    elif op == "tokenize":
        reply(event="tokenize", ids=[1] + [len(w) for w in request["text"].split()], bos_action="none")
    elif op == "detokenize":
        reply(event="detokenize", text=" ".join(map(str, request["ids"])))
    elif op == "prepare":
        reply(event="prepare", prepare_s=0.25, threads_reported=loaded["threads"], rayon_current_num_threads=2,
              ran_on_rayon_worker=0, candle_get_num_threads=2, rayon_num_threads_env="2",
              context={{"n_threads": loaded["threads"], "n_threads_batch": loaded["threads"], "n_ctx": 64}})
    elif op == "generate":
        reps = []
        for _ in range(request["repetitions"]):
            busy(0.02)
            n = request["gen_tokens"]
            reps.append({{"token_ids": [7] * n, "prefill_s": 0.002, "ttft_s": 0.003,
                          "inter_token_latencies_s": [0.001] * (n - 1), "decode_engine_s": 0.0009 * (n - 1),
                          "llama_perf": {{"t_p_eval_ms": 1.0, "n_p_eval": 3}}}})
        reply(event="generate", repetitions=reps)
    elif op == "perplexity":
        reps = []
        for _ in range(request["repetitions"]):
            busy(0.01)
            reps.append({{"time_s": 0.01, "nll_sums": [2.0 * w["score_last"] for w in request["windows"]],
                          "llama_perf": {{"t_p_eval_ms": 1.0, "n_p_eval": 3}}}})
        reply(event="perplexity", repetitions=reps)
    else:
        reply(event="error", op=op, error="unknown request " + op)
"""


def kit_for(engine: str, tmp_path, fail: str = ""):
    """The IMAGE's runner.py beside the kit as the IMAGE assembles it, and a stand-in native runner."""
    folder = imagebuild.IMAGES_DIR / engine
    root = tmp_path / "engine"
    for rel, content, _ in imagebuild.shared_files(engine, (folder / "Dockerfile").read_text()):
        if rel.startswith("_shared/runnerkit/"):
            target = root / "runnerkit" / rel.split("/", 2)[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    (root / "runner.py").write_bytes((folder / "runner.py").read_bytes())
    fake = tmp_path / "native-runner"
    fake.write_text(FAKE.format(python=sys.executable, fail=fail))
    fake.chmod(0o755)
    return root, fake


@pytest.fixture()
def loaded(tmp_path, monkeypatch):
    """load(engine) -> the engine's runner module, imported beside its kit, with the stand-in as its native runner."""
    def load(engine: str, fail: str = ""):
        root, fake = kit_for(engine, tmp_path, fail)
        monkeypatch.setenv("ORCHESTRATE_BUILD_INFO", str(tmp_path / "no-build.json"))
        monkeypatch.syspath_prepend(str(root))
        for name in [m for m in sys.modules if m == "runner" or m.startswith("runnerkit")]:
            monkeypatch.delitem(sys.modules, name)
        module = importlib.import_module("runner")
        module.FAKE_COMMAND = [str(fake)]
        return module
    yield load
    for name in [m for m in sys.modules if m == "runner" or m.startswith("runnerkit")]:
        sys.modules.pop(name, None)


def write_job(tmp_path, engine: str, **workload) -> str:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    job = {"schema_version": 1, "run_id": "r", "cell_id": "c-000000000001", "engine": {"name": engine, "options": {}},
           "model": {"id": "m", "format": "gguf-f32", "path": str(model), "sha256": "0" * 64, "tokenizer": None},
           "threads": 2, "workload": {"name": "w", "prompt": "Once upon a time", "prompt_tokens": 9, "gen_tokens": 5},
           "warmup": 1, "repetitions": 3, "output_dir": str(tmp_path)}
    job["workload"] = {k: v for k, v in {**job["workload"], **workload}.items() if v is not None}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return str(path)


def perplexity_workload(tmp_path, ids: list[int]) -> dict:
    path = tmp_path / "ids.json"
    path.write_text(json.dumps({"text": "t", "tokenizer": "made up", "ids": ids}))
    return {"kind": "perplexity", "text": "t", "ids_path": str(path),
            "ids_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "context": 8, "stride": 4,
            "prompt": None, "prompt_tokens": None, "gen_tokens": None}


def run_job(module, job_path: str) -> dict:
    """The CELL as the runner's ``native.serve`` runs it, with the stand-in as the native program."""
    jobs, native = sys.modules["runnerkit.job"], sys.modules["runnerkit.native"]
    return native.run(jobs.load(job_path), module.FAKE_COMMAND, module.ENGINE_NAME, module.describe)


@pytest.mark.parametrize("engine", ["llama.cpp", "candle"])
def test_a_generation_cell_is_measured_in_the_child_and_written_by_the_kit(engine, loaded, tmp_path):
    module = loaded(engine)
    document = run_job(module, write_job(tmp_path, engine))
    assert schemas.problems("result", document) == []
    assert document["prompt_token_ids"][:5] == [1, 4, 4, 1, 4] and len(document["prompt_token_ids"]) == 9
    reps = document["repetitions"]
    assert [r["index"] for r in reps] == [0, 1, 2]
    assert all(r["generated_tokens"] == 5 and r["decode_s"] == pytest.approx(0.004) for r in reps)
    assert document["load_time_s"] == pytest.approx(0.75)  # load + prepare
    assert document["threads"]["engine_reported"] == 2 and document["threads"]["requested"] == 2
    per_thread = document["threads"]["per_thread"]
    assert {t["pid"] for t in per_thread} != {os.getpid()}  # the child's threads, not this process's
    assert max(t["cpu_s"] for t in per_thread) > 0.01  # three timed repetitions of 20 ms busy in the child
    assert document["peak_rss_bytes"] and document["peak_rss_bytes"] > 0
    assert document["engine"]["name"] == engine


def test_llama_cpp_adds_its_own_figures(loaded, tmp_path):
    document = run_job(loaded("llama.cpp"), write_job(tmp_path, "llama.cpp"))
    extra = document["extra"]
    assert extra["generated_text"]["text"] == "7 7 7 7 7"
    assert extra["harness"]["repetitions"][0]["harness_share"] == pytest.approx(0.1)
    assert extra["prompt"]["text_repeats"] == 2
    assert document["engine"]["build"]["system_info_parsed"] == {"CPU.AVX": True, "CPU.SSE3": False}
    assert document["engine"]["build"]["build_info_missing"].endswith("no-build.json")


@pytest.mark.parametrize("engine", ["llama.cpp", "candle"])
def test_a_perplexity_cell_sends_the_kits_windows(engine, loaded, tmp_path):
    ids = list(range(3, 23))  # 20 ids, context 8, stride 4: windows [0,8) [4,12) [8,16) [12,20)
    document = run_job(loaded(engine), write_job(tmp_path, engine, **perplexity_workload(tmp_path, ids)))
    assert schemas.problems("result", document) == []
    figures = document["perplexity"]
    assert (figures["tokens"], figures["windows"], figures["scored_tokens"]) == (20, 4, 19)
    assert figures["mean_nll"] == pytest.approx(2.0)  # the stand-in's 2.0 per scored id
    assert [r["time_s"] for r in document["repetitions"]] == [0.01, 0.01, 0.01]


def test_the_kit_refuses_a_prompt_that_does_not_fit_before_any_timing(loaded, tmp_path):
    module = loaded("candle")
    with pytest.raises(sys.modules["runnerkit.job"].JobError, match="exceed the model's context length"):
        run_job(module, write_job(tmp_path, "candle", prompt_tokens=300))


def test_an_ids_file_that_is_not_the_jobs_is_refused(loaded, tmp_path):
    module = loaded("llama.cpp")
    workload = {**perplexity_workload(tmp_path, [5, 6, 7]), "ids_sha256": "0" * 64}
    with pytest.raises(sys.modules["runnerkit.job"].JobError, match="does not match"):
        run_job(module, write_job(tmp_path, "llama.cpp", **workload))


def test_an_error_in_the_child_ends_the_cell_with_its_reason(loaded, tmp_path):
    module = loaded("llama.cpp", fail="load")
    child = sys.modules["runnerkit.child"]
    with pytest.raises(child.ChildError, match="failed to load model"):
        run_job(module, write_job(tmp_path, "llama.cpp"))


def test_a_child_that_dies_is_named_with_its_signal(loaded, tmp_path):
    loaded("candle")
    child = sys.modules["runnerkit.child"]
    script = tmp_path / "dies.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    with child.Child([sys.executable, str(script)], lambda line: None, "candle") as engine:
        with pytest.raises(child.ChildError, match=r"candle runner ended \(killed by SIGILL\) before 'load'"):
            engine.request("load")
