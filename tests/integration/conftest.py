"""Integration fixtures: a real Docker engine, real images, the real model."""

import os

import pytest

from orchestrator import models
from orchestrator.dockerapi import Docker

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


@pytest.fixture(scope="session")
def tinystories(docker, logs_dir):
    """tinystories-15m in the default store, made offline in pinned containers if missing."""
    return models.prepare(docker, "tinystories-15m", ["gguf-f32", "gguf-q8_0"], logs_dir)


@pytest.fixture(scope="session")
def tinystories_all(docker, logs_dir):
    """Every format of tinystories-15m that an engine reads."""
    return models.prepare(docker, "tinystories-15m", ["safetensors", "gguf-f32", "gguf-q8_0", "gguf-q4_0", "onnx"],
                          logs_dir)


@pytest.fixture
def no_leftovers(docker):
    """Assert that the test left no orchestrator container behind (others' containers are not ours)."""
    before = set(docker.list_labelled())
    yield
    left = set(docker.list_labelled()) - before
    assert not left, f"orchestrator containers were left behind: {sorted(left)}"
