"""What the runner reads from `ollama serve`'s log: llama-server starts and the thread count (pure).

Ollama 0.33 logs, through slog's text handler, one line each time it starts llama-server for a model,
with the whole command line (llm/llama_server.go:433), and passes num_thread as ``-t N`` (:414-416).
llama-server's own output goes to the same stream (:917); the line in which llama-server itself states
its thread count depends on the llama.cpp build (``system_info: n_threads = N ...``, or ``llama
threadpool init, n_threads = N``), so both forms are read, and the ``-t`` of the command line is the
fallback when llama-server printed neither.
"""

from __future__ import annotations

import re

STARTING = 'msg="starting llama-server"'
_DASH_T = re.compile(r'\s-t\s+(\d+)(?=[\s"])')
_LLAMA_SERVER_THREADS = re.compile(r"(?:system_info: |threadpool init, )n_threads = (\d+)")


def llama_server_starts(text: str) -> int:
    """How many times Ollama started llama-server (one per model load)."""
    return sum(1 for line in text.splitlines() if STARTING in line)


def threads(text: str) -> tuple[int | None, str]:
    """The thread count of the last llama-server Ollama started, and where it was read.

    llama-server's own statement after the last start wins; else the ``-t`` Ollama passed; else None.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if STARTING in line]
    if not starts:
        return None, "no 'starting llama-server' line in Ollama's log"
    start = lines[starts[-1]]
    own = [int(m.group(1)) for line in lines[starts[-1] + 1:] for m in [_LLAMA_SERVER_THREADS.search(line)] if m]
    if own:
        return own[-1], "llama-server's own n_threads line after Ollama's last 'starting llama-server' line"
    dash_t = _DASH_T.search(start)
    if dash_t:
        return int(dash_t.group(1)), ("the -t of Ollama's last 'starting llama-server' command line (llama-server "
                                      "printed no n_threads line)")
    return None, "Ollama's last 'starting llama-server' command line has no -t"
