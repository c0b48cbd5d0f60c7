"""Shared test helpers."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD_MATRIX = """\
version: 1
engines:
  - name: llama.cpp
models:
  - id: tinystories-15m
    formats: [gguf-f32, gguf-q8_0]
threads: [1, 2]
workloads:
  - name: short
    prompt: "Once upon a time"
    prompt_tokens: 16
    gen_tokens: 8
"""


@pytest.fixture
def good_matrix() -> str:
    return GOOD_MATRIX


def sigint_default() -> None:
    """``preexec_fn`` for a child the test will send SIGINT: take the default handling of it.

    A command started in the background of a non-interactive shell inherits SIGINT as ignored,
    and Python then installs no KeyboardInterrupt handler: the child would never see the signal.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
