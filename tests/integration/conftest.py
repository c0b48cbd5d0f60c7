"""Integration fixtures: a real Docker engine, real images, the real model."""

import os
import queue
import threading

import pytest

from orchestrator.host.dockerapi import Docker
from orchestrator.images import imagebuild
from orchestrator.models import modelstore

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image would need a registry


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker() -> Docker:
    # No skip: without a Docker engine these tests must fail, not pass silently.
    return Docker()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


# The IMAGEs the integration tests use, the longest builds first. On a machine without them
# they are built two at a time in the background while the first tests run: a compile
# (llama.cpp, candle) overlaps a download of PyTorch (modelmaker, transformers), which a
# one-after-the-other build would wait through. A test that needs an IMAGE asks for it as
# always (imagebuild.ensure): it waits for a build under way and never starts a second one. A
# build that fails here is simply built again by the test that needs it, which reports it.
# The test double (a minute to build) is left to its tests: test_images.py changes its folder.
BACKGROUND = ["llama.cpp", "modelmaker", "candle", "transformers", "onnxruntime"]
BACKGROUND_BUILDS = 2


@pytest.fixture(scope="session", autouse=True)
def images_in_background(logs_dir):
    todo: queue.Queue = queue.Queue()
    for name in BACKGROUND:
        todo.put(name)

    def build() -> None:
        docker = Docker()  # a client of its own in each thread
        while True:
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            try:
                imagebuild.ensure(docker, name, logs_dir, lambda _: None)
            except Exception:  # noqa: BLE001 - the test that needs the IMAGE builds it again and reports why
                pass

    for _ in range(BACKGROUND_BUILDS):
        threading.Thread(target=build, name="image-builds", daemon=True).start()  # daemon: never blocks the exit
    yield


@pytest.fixture(scope="session")
def tinystories(docker, logs_dir):
    """tinystories-15m in the default store, made offline in pinned containers if missing."""
    return modelstore.prepare(docker, "tinystories-15m", ["gguf-f32", "gguf-q8_0"], logs_dir)


@pytest.fixture(scope="session")
def tinystories_all(docker, logs_dir):
    """Every format of tinystories-15m that an engine reads."""
    return modelstore.prepare(docker, "tinystories-15m", ["safetensors", "gguf-f32", "gguf-q8_0", "gguf-q4_0", "onnx",
                                                        "onnx-genai-fp32", "onnx-genai-int4"], logs_dir)


@pytest.fixture
def no_leftovers(docker):
    """Assert that the test left no orchestrator container behind (others' containers are not ours)."""
    before = set(docker.list_labelled())
    yield
    left = set(docker.list_labelled()) - before
    assert not left, f"orchestrator containers were left behind: {sorted(left)}"
