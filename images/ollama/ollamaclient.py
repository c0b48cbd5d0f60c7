"""The Ollama runner's HTTP client: unload, wait, preload untimed, and one timed, streamed /api/generate.

Standard library only, and free of the runner kit, so that its logic is tested on any machine against a
test double of Ollama's API (tests/unit/test_ollama_client.py). Every request field and option below was
checked against Ollama's source at v0.33.0-rc2 (images/ollama/README.md gives file and line).

The timed request asks for no logprobs: with them Ollama asks llama-server for n_probs, which (in every
llama.cpp source read) sorts and normalises every candidate logit for every token, inside the timed
decode. Tokens are counted from the final chunk's eval_count instead (ollamastream).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

from ollamastream import Chunk, Generation, OllamaError, load_inside, trailing_run

__all__ = ["Client", "OllamaError", "options", "REQUEST", "context_size"]

KEEP_ALIVE = "10m"
# raw: the prompt as given; shift false: a full context stops the generation (a limit stop) instead of
# discarding half the cache mid-decode; truncate false: a prompt too long for num_ctx is an error, not cut.
# The preload must carry the same shift, or Ollama reloads the model for the timed request.
REQUEST = {"raw": True, "shift": False, "truncate": False}
CONTEXT_HEADROOM = 64  # num_ctx beyond prompt + generated tokens, so that no repetition ends on a full context
POLL_S = 0.02


def options(threads: int, gen_tokens: int, num_ctx: int, seed: int) -> dict:
    """Ollama's options for one CELL: greedy, num_predict = gen_tokens, and no stop strings.

    ``stop: []`` clears the stop strings `ollama create` took from the chat template for a bare
    ``FROM x.gguf``; they apply to raw requests too (``null`` would leave them in place).
    """
    return {"num_thread": threads, "temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0,
            "repeat_penalty": 1.0, "seed": seed, "num_predict": gen_tokens, "num_ctx": num_ctx, "stop": []}


def context_size(prompt_tokens: int, gen_tokens: int, model_context: int | None, asked: int = 0) -> int:
    """num_ctx for a CELL: the one asked for, else prompt + generated tokens + CONTEXT_HEADROOM (at most the
    model's context length). An asked num_ctx without a free slot beyond the CELL's tokens is refused:
    llama-server would end the generation on a full context."""
    if asked:
        if asked <= prompt_tokens + gen_tokens:
            raise OllamaError(f"num_ctx {asked} cannot hold the prompt ({prompt_tokens}) and the generated tokens "
                              f"({gen_tokens}) with a free slot")
        return asked
    wanted = prompt_tokens + gen_tokens + CONTEXT_HEADROOM
    return min(wanted, model_context) if model_context else wanted


class Client:
    """Ollama's API on 127.0.0.1:<port>."""

    def __init__(self, port: int, timeout_s: float = 600.0) -> None:
        self.port, self.timeout_s = port, timeout_s

    def _connect(self, method: str, path: str, body: dict | None) -> tuple[http.client.HTTPConnection,
                                                                             http.client.HTTPResponse]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        connection.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            text = response.read()[:2000].decode("utf-8", "replace")
            connection.close()
            raise OllamaError(f"{method} {path}: HTTP {response.status}: {text}")
        return connection, response

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One JSON request, one JSON answer."""
        connection, response = self._connect(method, path, body)
        try:
            text = response.read().decode("utf-8", "replace")
            return json.loads(text) if text.strip() else {}
        finally:
            connection.close()

    def version(self) -> str:
        return str(self.call("GET", "/api/version").get("version", ""))

    def loaded(self, model: str) -> dict | None:
        """The model's /api/ps entry (Ollama lists it as name:tag) while it is loaded, else None."""
        for entry in self.call("GET", "/api/ps").get("models") or []:
            if {model, f"{model}:latest"} & {entry.get("name"), entry.get("model")}:
                return entry
        return None

    def unload(self, model: str) -> None:
        """Ask Ollama to unload the model (keep_alive 0). It answers at once and unloads later."""
        answer = self.call("POST", "/api/generate", {"model": model, "keep_alive": 0, "stream": False})
        if answer.get("done_reason") != "unload":
            raise OllamaError(f"unloading {model}: expected done_reason 'unload', got {answer.get('done_reason')!r}")

    def wait_unloaded(self, model: str, timeout_s: float = 120.0) -> float:
        """Poll /api/ps until the model is gone; the seconds it took."""
        started = time.perf_counter()
        while self.loaded(model) is not None:
            if time.perf_counter() - started > timeout_s:
                raise OllamaError(f"{model} was still loaded {timeout_s:.0f} s after Ollama confirmed its unload")
            time.sleep(POLL_S)
        return time.perf_counter() - started

    def load(self, model: str, opts: dict) -> float:
        """Load the model untimed (a request without a prompt, the timed request's options); its wall time."""
        started = time.perf_counter()
        answer = self.call("POST", "/api/generate", {"model": model, "options": opts, "keep_alive": KEEP_ALIVE,
                                                     "stream": False, **REQUEST})
        if answer.get("done_reason") != "load":
            raise OllamaError(f"loading {model}: expected done_reason 'load', got {answer.get('done_reason')!r}")
        return time.perf_counter() - started

    def fresh(self, model: str, opts: dict) -> dict:
        """Unload, wait until /api/ps no longer lists the model, preload it untimed, check it is listed.

        The KV cache and any cached prompt prefix go with the unload.
        """
        self.unload(model)
        waited = self.wait_unloaded(model)
        preload_s = self.load(model, opts)
        entry = self.loaded(model)
        if entry is None:
            raise OllamaError(f"{model} is not listed by /api/ps right after its preload")
        return {"unload_wait_s": waited, "preload_s": preload_s, "context_length": entry.get("context_length")}

    def generate(self, model: str, prompt: str, opts: dict) -> Generation:
        """One raw, streamed generation without logprobs; every chunk stamped as it arrives."""
        clock = time.perf_counter
        body = {"model": model, "prompt": prompt, "stream": True, "options": opts, "keep_alive": KEEP_ALIVE,
                **REQUEST}
        generation = Generation(sent=clock())
        connection, response = self._connect("POST", "/api/generate", body)
        try:
            while True:
                line = response.readline()
                now = clock()
                if not line:
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise OllamaError(f"/api/generate streamed an error: {event['error']}")
                if event.get("response"):  # the final chunk may carry text too
                    generation.chunks.append(Chunk(now, event["response"]))
                if event.get("done"):
                    generation.final = event
                    break
        finally:
            connection.close()
        if not generation.final and not generation.repeat_limited:
            raise OllamaError(f"/api/generate ended without a final chunk after {len(generation.chunks)} chunks, "
                              f"and not after Ollama's repeat limit (the last {trailing_run(generation.chunks)} "
                              "chunks repeat)")
        return generation

    def repetition(self, model: str, prompt: str, opts: dict, starts: Callable[[], int] = lambda: 0,
                   window: ContextManager | None = None) -> tuple[Generation, dict]:
        """fresh(), then the timed generate() (inside ``window``); refused when a load fell inside it.

        Two witnesses: the timed request's own load_duration, and ``starts`` (how many times Ollama has
        started llama-server, read from its log) before and after the request.
        """
        fresh = self.fresh(model, opts)
        before = starts()
        with window or contextlib.nullcontext():
            generation = self.generate(model, prompt, opts)
        problem = load_inside(generation.final, fresh["preload_s"])
        if starts() > before:
            problem = "Ollama started llama-server during the timed request: it loaded the model inside it"
        if problem:
            raise OllamaError(problem)
        return generation, fresh
