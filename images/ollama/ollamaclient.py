"""The Ollama runner's HTTP client: load, unload and one timed, streamed /api/generate.

Standard library only, and free of the runner kit, so that its logic is tested on any
machine against a test double of Ollama's API (tests/unit/test_ollama_client.py).

Ollama streams newline-delimited JSON chunks. A chunk is not a token: it may carry
several tokens, or none. With ``logprobs`` asked for, each chunk lists its tokens, and
that list is how tokens are counted; a chunk without that list counts as one token when
it carries text and as none when it is empty. Every chunk is stamped with
time.perf_counter as it arrives; the tokens of one chunk all become known at its arrival.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field


class OllamaError(RuntimeError):
    """Ollama answered with an error, or streamed something this client cannot read."""


@dataclass(frozen=True)
class Chunk:
    """One streamed chunk as it arrived: when, its text, how many tokens it carried and how that was counted."""

    arrived: float
    text: str
    tokens: int
    counted_by: str  # "logprobs", "text" (one token for a chunk with text) or "empty"


@dataclass
class Generation:
    """One streamed generation as the client saw it."""

    sent: float
    chunks: list[Chunk] = field(default_factory=list)
    final: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chunks)

    @property
    def stopped_short(self) -> bool:
        """Ollama cannot ignore end-of-sequence: did it stop before num_predict tokens?"""
        return self.final.get("done_reason") != "length"

    def token_times(self) -> list[float]:
        """The arrival time of every token (the tokens of one chunk share its arrival)."""
        return [c.arrived for c in self.chunks for _ in range(c.tokens)]

    def timing(self) -> dict:
        """TTFT and inter-token latencies at the client.

        ttft_s: from sending the request to the arrival of the first chunk that carried a
        token. Inter-token latencies: a chunk that carried k tokens spreads the gap since
        the previous token-carrying chunk evenly over its k tokens; the extra tokens of the
        first such chunk arrived with the first token and get no share of TTFT, so they are
        reported at the gap to the next chunk divided likewise (never zero, never invented
        outside the observed gaps).
        """
        carrying = [c for c in self.chunks if c.tokens > 0]
        if not carrying:
            raise OllamaError("the stream carried no token")
        latencies: list[float] = []
        previous = carrying[0].arrived
        pending_first = carrying[0].tokens - 1  # tokens that came with the first one
        for chunk in carrying[1:]:
            gap = chunk.arrived - previous
            share = chunk.tokens + pending_first
            latencies += [gap / share] * share
            pending_first = 0
            previous = chunk.arrived
        if pending_first:  # everything came in one chunk: no gap was observed between its tokens
            raise OllamaError(f"all {carrying[0].tokens} tokens came in one chunk: no inter-token latency can be "
                              "measured at the client")
        return {"ttft_s": carrying[0].arrived - self.sent, "inter_token_latencies_s": latencies,
                "decode_s": sum(latencies)}

    def summary(self) -> dict:
        """What a RESULT's extra keeps of this generation: Ollama's own figures and how chunks were counted."""
        keys = ("done_reason", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration")
        return {**{k: self.final.get(k) for k in keys}, "chunks": len(self.chunks),
                "empty_chunks": sum(1 for c in self.chunks if c.tokens == 0),
                "multi_token_chunks": sum(1 for c in self.chunks if c.tokens > 1),
                "tokens_counted": self.tokens, "counted_by": sorted({c.counted_by for c in self.chunks}),
                "stopped_short": self.stopped_short}


def chunk_tokens(event: dict) -> tuple[int, str]:
    """How many tokens one streamed chunk carried, and how that was counted."""
    if isinstance(event.get("logprobs"), list):
        return len(event["logprobs"]), "logprobs"
    return (1, "text") if event.get("response") else (0, "empty")


class Client:
    """Ollama's API on 127.0.0.1:<port>."""

    def __init__(self, port: int, timeout_s: float = 600.0) -> None:
        self.port, self.timeout_s = port, timeout_s

    def _post(self, path: str, body: dict) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        connection.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise OllamaError(f"POST {path}: HTTP {response.status}: {response.read()[:2000]!r}")
        return response

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One JSON request, one JSON answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        try:
            connection.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            if response.status != 200:
                raise OllamaError(f"{method} {path}: HTTP {response.status}: {text[:2000]}")
            return json.loads(text) if text.strip() else {}
        finally:
            connection.close()

    def version(self) -> str:
        return str(self.call("GET", "/api/version").get("version", ""))

    def _last(self, body: dict) -> dict:
        response = self._post("/api/generate", {**body, "stream": False})
        try:
            return json.loads(response.read().decode("utf-8"))
        finally:
            response.close()

    def load(self, model: str, options: dict) -> dict:
        """Load the model (a request without a prompt); Ollama answers done_reason 'load'."""
        answer = self._last({"model": model, "options": options, "keep_alive": "10m"})
        if answer.get("done_reason") not in ("load", None) and not answer.get("done"):
            raise OllamaError(f"loading {model}: unexpected answer {answer}")
        return answer

    def unload(self, model: str) -> dict:
        """Unload the model now (keep_alive 0): its KV cache, and so any cached prompt prefix, goes with it."""
        answer = self._last({"model": model, "keep_alive": 0})
        if answer.get("done_reason") != "unload":
            raise OllamaError(f"unloading {model}: expected done_reason 'unload', got {answer.get('done_reason')!r}")
        return answer

    def generate(self, model: str, prompt: str, options: dict) -> Generation:
        """One raw, streamed generation; every chunk stamped as it arrives."""
        clock = time.perf_counter
        body = {"model": model, "prompt": prompt, "raw": True, "stream": True, "options": options,
                "keep_alive": "10m", "logprobs": True}
        generation = Generation(sent=clock())
        response = self._post("/api/generate", body)
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
                if event.get("done"):
                    generation.final = event
                    tokens, how = chunk_tokens(event)
                    if tokens:  # a final chunk may still carry text
                        generation.chunks.append(Chunk(now, event.get("response", ""), tokens, how))
                    break
                tokens, how = chunk_tokens(event)
                generation.chunks.append(Chunk(now, event.get("response", ""), tokens, how))
        finally:
            response.close()
        if not generation.final:
            raise OllamaError("/api/generate: the stream ended without a final chunk (done: true)")
        return generation
