"""The runner kit (images/_shared/runnerkit) as the orchestrator assembles it into an IMAGE."""

import hashlib
import importlib
import json
import math
import sys
import threading
import time

import pytest

from orchestrator import schemas
from orchestrator.engines import ENGINES
from orchestrator.images import imagebuild


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The kit assembled for the onnxruntime IMAGE (with its options declaration), imported."""
    root = tmp_path_factory.mktemp("engine")
    dockerfile = (imagebuild.IMAGES_DIR / "onnxruntime" / "Dockerfile").read_text()
    for rel, content, _ in imagebuild.shared_files("onnxruntime", dockerfile):
        if rel.startswith("_shared/runnerkit/"):
            target = root / "runnerkit" / rel.split("/", 2)[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    sys.path.insert(0, str(root))
    try:
        names = ("job", "prompt", "proc", "result", "schema", "timing", "main", "perplexity")
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
    dockerfile = (imagebuild.IMAGES_DIR / "transformers" / "Dockerfile").read_text()
    files = dict((rel, content) for rel, content, _ in imagebuild.shared_files("transformers", dockerfile))
    assert json.loads(files["_shared/runnerkit/options.schema.json"]) == ENGINES["transformers"].options
    assert b'"gen_tokens"' in files["_shared/runnerkit/cell.schema.json"]
    assert "_shared/torch/install_torch.sh" in files


# ---------------------------------------------------------------------------- the perplexity workload


def ids_file(tmp_path, ids, name="ids.json"):
    """An ids file as the orchestrator writes it; (path, sha256 of its bytes)."""
    data = json.dumps({"text": "t", "tokenizer": "tok", "ids": ids}).encode()
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def perplexity_job(tmp_path, ids=(5, 6, 7, 8, 9, 10), context=4, stride=2, sha256=None, **workload):
    path, digest = ids_file(tmp_path, list(ids))
    job = good_job(tmp_path)
    job["workload"] = {"name": "ppl", "kind": "perplexity", "text": "t", "ids_path": path,
                       "ids_sha256": sha256 or digest, "context": context, "stride": stride, **workload}
    return job


@pytest.mark.parametrize("n,context,stride,expected", [
    (10, 4, 2, [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]),
    (5, 8, 3, [(0, 5, 1)]),
    (8, 8, 7, [(0, 8, 1)]),
    (2, 2, 1, [(0, 2, 1)]),
    (5, 3, 1, [(0, 3, 1), (1, 4, 3), (2, 5, 4)]),
    (11, 4, 3, [(0, 4, 1), (3, 7, 4), (6, 10, 7), (9, 11, 10)]),
    (9, 4, 3, [(0, 4, 1), (3, 7, 4), (6, 9, 7)]),
])
def test_windows_are_the_contracts(kit, n, context, stride, expected):
    assert kit["perplexity"].windows(n, context, stride) == expected


@pytest.mark.parametrize("n", [2, 3, 7, 16, 17, 100])
@pytest.mark.parametrize("context,stride", [(2, 1), (4, 1), (4, 3), (8, 3), (8, 7), (16, 15), (33, 7), (33, 32)])
def test_windows_score_every_position_once_with_enough_history(kit, n, context, stride):
    wins = kit["perplexity"].windows(n, context, stride)
    scored = [i for _, end, first in wins for i in range(first, end)]
    assert scored == list(range(1, n))  # every id from 1 to n-1, once, in order
    assert wins[-1][1] == n and all(end < n for _, end, _ in wins[:-1])  # the last is the first ending at n
    for index, (start, end, first) in enumerate(wins):
        assert start == index * stride and end == min(start + context, n) and start < first < end
        if index:
            assert first - start >= context - stride  # history of every scored id, after the first window
        assert end - start <= context


def test_windows_refuse_what_the_contract_refuses(kit):
    for n, context, stride in [(1, 4, 2), (10, 1, 1), (10, 4, 0), (10, 4, 4), (10, 4, 5)]:
        with pytest.raises(kit["job"].JobError):
            kit["perplexity"].windows(n, context, stride)


LN = math.log
ROW = [0.0, LN(2), LN(3)]  # exp: 1, 2, 3, sum 6


def tiny_model(calls):
    """Window logits over a vocabulary of 3: every row is ROW, shifted by the window position
    (a shift leaves the NLL alone, so the max-shift of logsumexp is exercised too)."""
    def window_logits(window_ids, first, count):
        calls.append((list(window_ids), first, count))
        return [[x + 100.0 * (first + k) for x in ROW] for k in range(count)]
    return window_logits


def test_evaluate_matches_a_hand_computed_nll(kit):
    ppl = kit["perplexity"]
    ids = [0, 2, 1, 0, 2, 2]
    wins = ppl.windows(len(ids), 3, 2)  # (0,3,1), (2,5,3), (4,6,5)
    calls = []
    mean_nll, scored = ppl.evaluate(ids, wins, tiny_model(calls))
    # nll = ln 6 - z[target]: target 0 -> ln 6, 1 -> ln 3, 2 -> ln 2; scored ids 2, 1, 0, 2, 2
    expected = (LN(2) + LN(3) + LN(6) + LN(2) + LN(2)) / 5
    assert scored == 5 and mean_nll == pytest.approx(expected, rel=1e-12)
    assert calls == [([0, 2, 1], 0, 2), ([1, 0, 2], 0, 2), ([2, 2], 0, 1)]


def test_evaluate_scores_numpy_rows_in_float64(kit):
    np = pytest.importorskip("numpy")
    ppl = kit["perplexity"]
    ids = [0, 2, 1, 0, 2, 2]
    wins = ppl.windows(len(ids), 4, 3)  # (0,4,1), (3,6,4)

    def window_logits(window_ids, first, count):
        return np.asarray([[x + 100.0 * (first + k) for x in ROW] for k in range(count)], dtype=np.float32)

    mean_nll, scored = ppl.evaluate(ids, wins, window_logits)
    python_nll, _ = ppl.evaluate(ids, wins, lambda w, f, c: window_logits(w, f, c).tolist())
    expected = (LN(2) + LN(3) + LN(6) + LN(2) + LN(2)) / 5
    assert scored == 5 and isinstance(mean_nll, float)
    assert mean_nll == pytest.approx(expected, rel=1e-6) and mean_nll == pytest.approx(python_nll, rel=1e-12)


def test_evaluate_refuses_rows_of_the_wrong_shape(kit):
    ppl = kit["perplexity"]
    with pytest.raises(RuntimeError, match="rows"):
        ppl.evaluate([0, 1, 2], [(0, 3, 1)], lambda w, f, c: [ROW])


def test_the_kit_imports_no_numpy():
    source = (imagebuild.SHARED_DIR / "runnerkit" / "perplexity.py").read_text()
    assert "\nimport numpy" not in source and "\nfrom numpy" not in source


def test_schema_if_then_else(kit):
    schema = {"type": "object", "if": {"properties": {"kind": {"const": "p"}}, "required": ["kind"]},
              "then": {"required": ["ids"]}, "else": {"required": ["prompt"]}}
    problems = kit["schema"].problems
    assert problems(schema, {"kind": "p", "ids": 1}) == [] and problems(schema, {"prompt": "x"}) == []
    assert problems(schema, {"kind": "p", "prompt": "x"}) == ["(top level): 'ids' is missing"]
    assert problems(schema, {"kind": "g", "ids": 1}) == ["(top level): 'prompt' is missing"]
    assert problems({"if": {"const": 1}, "then": {"minimum": 5}}, 1) == ["(top level): 1 is less than the minimum 5"]
    assert problems({"if": {"const": 1}, "then": {"minimum": 5}}, 2) == []


def test_a_perplexity_job_becomes_a_job(kit, tmp_path):
    document = perplexity_job(tmp_path)
    assert schemas.problems("cell", document) == []
    job = kit["job"].check(document)
    assert job.kind == "perplexity" and job.perplexity and job.context == 4 and job.stride == 2
    assert job.prompt is None and job.gen_tokens is None and job.prompt_tokens is None
    generation = kit["job"].check(good_job(tmp_path))
    assert generation.kind == "generate" and not generation.perplexity and generation.ids_path is None


@pytest.mark.parametrize("change,words", [
    ({"ids_path": None}, "'ids_path' is missing"),
    ({"context": 1}, "less than the minimum 2"),
    ({"stride": 0}, "less than the minimum 1"),
    ({"stride": 4}, "stride \\(4\\) is not below workload.context \\(4\\)"),
    ({"stride": 5}, "stride \\(5\\) is not below workload.context \\(4\\)"),
    ({"kind": "other"}, "is not one of"),
])
def test_a_bad_perplexity_job_is_refused(kit, tmp_path, change, words):
    document = perplexity_job(tmp_path)
    for key, value in change.items():
        if value is None:
            del document["workload"][key]
        else:
            document["workload"][key] = value
    with pytest.raises(kit["job"].JobError, match=words):
        kit["job"].check(document)


def test_a_generation_job_without_its_prompt_is_refused(kit, tmp_path):
    document = good_job(tmp_path)
    del document["workload"]["gen_tokens"]
    with pytest.raises(kit["job"].JobError, match="'gen_tokens' is missing"):
        kit["job"].check(document)


def test_ids_are_loaded_and_checked(kit, tmp_path):
    job = kit["job"].check(perplexity_job(tmp_path))
    assert kit["perplexity"].load_ids(job) == [5, 6, 7, 8, 9, 10]


def test_an_ids_file_with_another_sha256_is_refused(kit, tmp_path):
    job = kit["job"].check(perplexity_job(tmp_path, sha256="0" * 64))
    with pytest.raises(kit["job"].JobError, match="does not match the job's ids_sha256"):
        kit["perplexity"].load_ids(job)


def test_an_ids_file_with_too_few_ids_is_refused(kit, tmp_path):
    job = kit["job"].check(perplexity_job(tmp_path, ids=[5]))
    with pytest.raises(kit["job"].JobError, match="at least 2"):
        kit["perplexity"].load_ids(job)


def test_a_context_over_the_models_is_refused(kit):
    kit["perplexity"].check_context(256, 256, 32000, [1, 31999])
    with pytest.raises(kit["job"].JobError, match="exceeds the model's context length"):
        kit["perplexity"].check_context(257, 256)
    with pytest.raises(kit["job"].JobError, match="outside the model's vocabulary"):
        kit["perplexity"].check_context(256, 256, 32000, [1, 32000])


def test_a_perplexity_result_passes_the_schema(kit, tmp_path):
    ppl = kit["perplexity"]
    job = kit["job"].check(perplexity_job(tmp_path, ids=[0, 2, 1, 0, 2, 2], context=3, stride=2))
    ids = ppl.load_ids(job)
    wins = ppl.windows(len(ids), job.context, job.stride)
    calls = []
    ppl.warmup(ids, wins, tiny_model(calls), 2)
    assert calls == [([0, 2, 1], 0, 2)] * 2  # warmup: the first window only
    reps = ppl.repetitions(ids, wins, tiny_model([]), 3)
    assert [r["index"] for r in reps] == [0, 1, 2] and all(r["time_s"] >= 0 for r in reps)
    assert {(r["windows"], r["scored_tokens"]) for r in reps} == {(3, 5)}
    fields = ppl.result_fields(job, ids, wins, reps)
    assert fields["perplexity"] == pytest.approx(math.exp(reps[0]["mean_nll"]))
    with kit["proc"].cpu_window() as window:
        pass
    threads = kit["result"].threads(job, window, 2, "test")
    document = kit["result"].perplexity_document(job, {"name": "e", "version": "1", "build": {}}, threads, 0.5,
                                                 None, fields, reps)
    assert schemas.problems("result", document) == []
    assert "prompt_token_ids" not in document and document["perplexity"]["tokens"] == 6
    generation = kit["result"].document(job, {"name": "e", "version": "1", "build": {}}, threads, 0.5, None,
                                        [1, 2], reps)
    assert schemas.problems("result", generation) != []  # evaluation repetitions are no generation's


def test_main_refuses_a_workload_kind_the_runner_does_not_run(kit, tmp_path, monkeypatch, capsys):
    (tmp_path / "job.json").write_text(json.dumps(perplexity_job(tmp_path)))
    monkeypatch.setenv("ORCHESTRATE_JOB", str(tmp_path / "job.json"))
    assert kit["main"].run("test", lambda job: {}) == 1
    assert "does not run 'perplexity' workloads" in capsys.readouterr().err
    assert kit["main"].run("test", lambda job: {"ok": job.kind}, kinds=("generate", "perplexity")) == 0
    assert json.loads((tmp_path / "result.json").read_text()) == {"ok": "perplexity"}
