"""The runner kit (images/_shared/runnerkit) as the orchestrator assembles it into an IMAGE."""

import importlib
import json
import sys
import threading
import time

import pytest

from orchestrator import images
from orchestrator.engines import ENGINES


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The kit assembled for the onnxruntime IMAGE (with its options declaration), imported."""
    root = tmp_path_factory.mktemp("engine")
    dockerfile = (images.IMAGES_DIR / "onnxruntime" / "Dockerfile").read_text()
    for rel, content, _ in images.shared_files("onnxruntime", dockerfile):
        if rel.startswith("_shared/runnerkit/"):
            target = root / "runnerkit" / rel.split("/", 2)[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    sys.path.insert(0, str(root))
    try:
        names = ("job", "prompt", "proc", "result", "schema", "timing", "main")
        yield {name: importlib.import_module(f"runnerkit.{name}") for name in names}
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "runnerkit" or n.startswith("runnerkit.")]:
            del sys.modules[name]


def good_job(tmp_path, **changes):
    job = {"schema_version": 1, "run_id": "r", "cell_id": "c-000000000001",
           "engine": {"name": "onnxruntime", "options": {}},
           "model": {"id": "m", "format": "onnx", "path": "/models/onnx/model.onnx", "sha256": "0" * 64,
                     "tokenizer": None},
           "threads": 2, "workload": {"name": "w", "prompt": "Once", "prompt_tokens": 16, "gen_tokens": 8},
           "warmup": 1, "repetitions": 2, "output_dir": str(tmp_path)}
    for key, value in changes.items():
        if key in job["workload"]:
            job["workload"][key] = value
        else:
            job[key] = value
    return job


def test_a_good_job_becomes_a_job(kit, tmp_path):
    job = kit["job"].check(good_job(tmp_path))
    assert job.threads == 2 and job.prompt_tokens == 16 and job.options == {}
    assert kit["job"].option(job, "graph_optimization_level") == "all"  # the declared default


@pytest.mark.parametrize("changes,words", [
    ({"gen_tokens": 1}, "less than the minimum 2"),
    ({"prompt_tokens": 1}, "less than the minimum 2"),
    ({"threads": "2"}, "is not of type integer"),
    ({"cell_id": "cell-1"}, "does not match"),
    ({"engine": {"name": "onnxruntime", "options": {"no_such": 1}}}, "engine.options.no_such: not allowed"),
    ({"engine": {"name": "onnxruntime", "options": {"allow_spinning": "yes"}}}, "is not of type boolean"),
])
def test_a_bad_job_is_refused_with_its_reason(kit, tmp_path, changes, words):
    with pytest.raises(kit["job"].JobError, match=words):
        kit["job"].check(good_job(tmp_path, **changes))


def test_an_unreadable_job_is_refused(kit, tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"schema_version": 1,')
    with pytest.raises(kit["job"].JobError, match="cannot read job"):
        kit["job"].load(str(path))


def test_prompt_is_repeated_and_cut(kit):
    def encode(text):
        return [1] + [len(w) for w in text.split()]

    ids, repeats = kit["prompt"].shape(encode, "Once upon a time", 7)
    assert ids == [1, 4, 4, 1, 4, 4, 4] and repeats == 2
    assert kit["prompt"].shape(encode, "Once upon", None) == ([1, 4, 4], 1)


def test_a_prompt_that_does_not_grow_is_refused(kit):
    with pytest.raises(kit["job"].JobError, match="does not grow"):
        kit["prompt"].shape(lambda text: [1], "x", 4)


def test_context_check_refuses_what_does_not_fit(kit):
    kit["prompt"].check_context(200, 56, 256)
    with pytest.raises(kit["job"].JobError, match="exceed the model's context length"):
        kit["prompt"].check_context(200, 57, 256)


def test_a_repetition_has_every_contract_field(kit):
    calls = []
    rep = kit["timing"].repetition(0, [1, 2, 3], 4, lambda: calls.append("prefill") or 5,
                                   lambda out: out, lambda token: calls.append(token) or token + 1)
    assert rep["token_ids"] == [5, 6, 7, 8] and calls == ["prefill", 5, 6, 7]
    assert rep["prompt_tokens"] == 3 and rep["generated_tokens"] == 4
    assert len(rep["inter_token_latencies_s"]) == 3 and rep["decode_s"] == sum(rep["inter_token_latencies_s"])
    assert rep["ttft_s"] >= rep["prefill_s"] >= 0


def test_cpu_window_sees_every_busy_thread(kit):
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    with kit["proc"].cpu_window() as window:
        worker.start()
        deadline = time.perf_counter() + 0.2
        while time.perf_counter() < deadline:
            sum(range(1000))
    stop.set()
    worker.join()
    busy = [t for t in window.per_thread if t["cpu_s"] > 0.02]
    assert len(busy) == 2 and "stat" in window.source


def test_process_tree_includes_children(kit):
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in kit["proc"].process_tree(__import__("os").getpid())
    finally:
        child.kill()
        child.wait()


def test_peak_memory_is_read(kit):
    assert kit["proc"].vm_hwm_bytes() > 0


def test_result_is_written_atomically(kit, tmp_path):
    path = kit["result"].write(str(tmp_path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_main_exits_1_with_the_reason_and_no_result(kit, tmp_path, monkeypatch, capsys):
    job = good_job(tmp_path, gen_tokens=1)
    (tmp_path / "job.json").write_text(json.dumps(job))
    monkeypatch.setenv("ORCHESTRATE_JOB", str(tmp_path / "job.json"))
    assert kit["main"].run("test", lambda job: {}) == 1
    assert "gen_tokens" in capsys.readouterr().err and not (tmp_path / "result.json").exists()


def test_the_assembled_kit_carries_the_engine_options_declaration():
    dockerfile = (images.IMAGES_DIR / "transformers" / "Dockerfile").read_text()
    files = dict((rel, content) for rel, content, _ in images.shared_files("transformers", dockerfile))
    assert json.loads(files["_shared/runnerkit/options.schema.json"]) == ENGINES["transformers"].options
    assert b'"gen_tokens"' in files["_shared/runnerkit/cell.schema.json"]
    assert "_shared/torch/install_torch.sh" in files
