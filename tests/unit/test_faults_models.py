"""The model store under faults: two processes preparing one model, Ctrl-C and kill -9 half way.

The tool containers are simulated: a fake ``run_tool`` writes what the real tools write
into the folder mounted at /out (slowly, so that two processes overlap), and counts
each tool it runs in a shared file. tests/integration/test_faults.py interrupts a real
tool container.
"""

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from orchestrator.files.locking import Lock
from orchestrator.host.dockerapi import Exit
from orchestrator.images.imagebuild import Built
from orchestrator.models import catalogue, modelstore

MODEL = "tinystories-15m"
GREEDY = {"prompt": "Once upon a time", "prompt_ids": [1, 9038], "n": 64, "generated": list(range(64)),
          "distinct": 64}


class FakeTools:
    """Stands in for Docker.run_tool: makes the files each tool would make, one tool call at a time."""

    def __init__(self, calls: Path, interrupt: str | None = None, delay: float = 0.3):
        self.calls, self.interrupt, self.delay = calls, interrupt, delay

    def run_tool(self, image, command, mounts, user, name, labels, timeout_s=0, on_line=None):
        tool = Path(command[1]).name if command[0] == "python3" else command[0]
        with self.calls.open("a") as log:
            log.write(tool + "\n")
        out = Path(next(m.host for m in mounts if m.container == "/out"))
        if tool == "make_model.py":
            (out / "hf").mkdir()
            (out / "hf" / "model.safetensors").write_bytes(b"weights" * 1000)
            time.sleep(self.delay)
            if self.interrupt == tool:
                raise KeyboardInterrupt  # Ctrl-C while the tool is half way
            (out / "hf" / "config.json").write_text("{}")
            (out / "gguf").mkdir()
            (out / "gguf" / "model-f32.gguf").write_bytes(b"GGUF" * 1000)
            (out / "manifest.json").write_text(json.dumps({"tokenizer": {"test_vectors": 47,
                                                                         "test_vectors_matched": 47}}))
            return Exit(0, False, False, None, None, "made\n")
        if tool == "greedy.py":
            return Exit(0, False, False, None, None, json.dumps(GREEDY) + "\n")
        if tool == "llama-quantize":
            time.sleep(self.delay)
            (out / Path(command[2]).name).write_bytes(b"GGUF-Q" * 500)
            return Exit(0, False, False, None, None, "quantized\n")
        raise AssertionError(f"unexpected tool {command}")


def fake_image(docker, name, logs_dir, progress=print, buildargs=None):
    return Built(name, f"orchestrate/{name}:test", "sha256:" + "0" * 64, "", "", {}, None, False)


def prepare(store: Path, calls: Path, formats: list[str], interrupt: str | None = None):
    modelstore.imagebuild.ensure = fake_image  # in a child process, or undone by monkeypatch in this one
    return modelstore.prepare(FakeTools(calls, interrupt), MODEL, formats, store / "logs", lambda _: None, root=store)


def _child(store, calls, start, results):
    start.wait()
    done = prepare(store, calls, ["gguf-q8_0"])
    results.put(done["gguf-q8_0"].sha256)


def test_two_processes_preparing_one_model_make_it_once_and_agree(tmp_path):
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    calls = tmp_path / "calls.txt"
    workers = [context.Process(target=_child, args=(tmp_path / "store", calls, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    hashes = [results.get(timeout=5) for _ in workers]
    assert hashes[0] == hashes[1]
    assert sorted(calls.read_text().split()) == ["greedy.py", "llama-quantize", "make_model.py"]  # each tool once
    folder = modelstore.folder(catalogue.get(MODEL), tmp_path / "store")
    assert modelstore.verify(folder) == []
    assert sorted(modelstore.manifest(folder)["files"]) == ["gguf-f32", "gguf-q8_0", "safetensors"]


def test_ctrl_c_while_a_tool_runs_leaves_nothing_half_made_in_the_store(tmp_path, monkeypatch):
    monkeypatch.setattr(modelstore.imagebuild, "ensure", fake_image)
    store = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        prepare(store, tmp_path / "calls.txt", ["gguf-f32"], interrupt="make_model.py")
    folder = modelstore.folder(catalogue.get(MODEL), store)
    assert sorted(p.name for p in folder.iterdir()) == []  # no work folders, no manifest, no model files
    assert modelstore.lookup(catalogue.get(MODEL), "gguf-f32", store) is None
    lock = Lock(folder.with_name(folder.name + ".lock"))
    assert lock.acquire()  # released
    lock.release()
    done = prepare(store, tmp_path / "calls.txt", ["gguf-f32"])  # and the next try makes it whole
    assert modelstore.verify(folder) == [] and done["gguf-f32"].size == 4000


def test_work_left_by_a_killed_process_is_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(modelstore.imagebuild, "ensure", fake_image)
    store = tmp_path / "store"
    folder = modelstore.folder(catalogue.get(MODEL), store)
    (folder / ".work-onnx" / "onnx").mkdir(parents=True)  # kill -9 while exporting ONNX
    (folder / ".work-onnx" / "onnx" / "model.onnx").write_bytes(b"half")
    prepare(store, tmp_path / "calls.txt", ["gguf-f32"])
    assert not list(folder.glob(".work-*"))
    assert modelstore.verify(folder) == []


def test_a_second_process_waits_for_the_lock_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(modelstore.imagebuild, "ensure", fake_image)
    store = tmp_path / "store"
    folder = modelstore.folder(catalogue.get(MODEL), store)
    folder.mkdir(parents=True)
    said = []
    context = multiprocessing.get_context("fork")
    holding = context.Event()
    # another process holds the lock for a second; this one waits, then makes the model
    release = context.Process(target=_release_later, args=(str(folder.with_name(folder.name + ".lock")), holding))
    release.start()
    assert holding.wait(timeout=10)
    done = modelstore.prepare(FakeTools(tmp_path / "calls.txt"), MODEL, ["gguf-f32"], store / "logs", said.append,
                          root=store)
    release.join(timeout=10)
    assert any(line.startswith("waiting: another orchestrate process is preparing tinystories-15m") for line in said)
    assert done["gguf-f32"].sha256


def _release_later(path, holding):
    lock = Lock(path)
    lock.acquire()
    holding.set()
    time.sleep(1.0)
    lock.release()
