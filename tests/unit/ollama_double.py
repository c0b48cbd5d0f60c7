"""A TEST DOUBLE of Ollama 0.33's HTTP API, on loopback, for the Ollama runner's client tests.

It is not Ollama and produces no real figures: it runs no model, it plays a scripted token sequence.
What it reproduces is what upstream does between a request and the chunks a client sees, quirks
included, as read in Ollama's source at v0.33.0-rc2 (file:line in images/ollama/README.md):

- llama-server (Ollama 0.33 runs it for every GGUF model): one event per decoded token; no event at
  all while the text ends inside a UTF-8 character; an empty event while the text may still be the start
  of a stop string; a stop string cuts the text and ends the generation; with context shift off, a full
  context ends it as a limit stop, with shift on the cache is shifted and decoding goes on; every decoded
  token counts in predicted_n (eval_count).
- Ollama's stream: events with empty text are dropped, their logprobs with them; after more than 30
  consecutive events with the same whitespace-trimmed text, the stream ends with no final chunk; the final
  chunk's done_reason is "length" for every limit stop, "stop" otherwise; stop strings the import added
  apply to raw requests unless the request's options carry "stop" (a list replaces them, null does not).
- The scheduler: an unload (empty prompt, keep_alive 0) is answered at once and happens unload_delay_s
  later, once no request holds the runner; a request arriving meanwhile reuses the doomed runner; a
  request for an unloaded model, or for one loaded with other runner options or another shift, loads it
  inside the request, and its load_duration (arrival to runner ready) shows it; a load request answers
  without load_duration; /api/ps lists the loaded model as name:latest with its context_length.
- The log (``log``): on each load, Ollama's `starting llama-server` line with the command line (-t N,
  --context-shift when shift is on) and a llama-server `system_info: n_threads = N` line.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNNER_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")  # api.Runner


@dataclass
class Script:
    """What the double's "model" does: tokens (seconds to decode it, its piece: str, or bytes that may split a
    UTF-8 character; "" for a token with no text), then an end-of-sequence token (counted, no text) when
    they run out."""

    tokens: list[tuple[float, str | bytes]] = field(default_factory=list)
    prompt_eval_count: int = 8  # what Ollama reports it evaluated
    prefill_s: float = 0.0
    model_stop: list[str] = field(default_factory=list)  # stop strings `ollama create` took from the template
    load_s: float = 0.05
    unload_delay_s: float = 0.0
    logprobs_cost_s: float = 0.0  # extra seconds per token when logprobs are asked (full-vocabulary softmax)


class OllamaDouble:
    """TEST DOUBLE of Ollama's API: ``with OllamaDouble(script) as double: Client(double.port)``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict] = []  # every /api/generate body, in order
        self.log: list[str] = []
        self.loads = 0
        self.shifts = 0
        self.runner: dict | None = None  # the loaded runner's options and shift
        self.model = ""
        self._doomed = False
        self._holders = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> OllamaDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def loaded(self) -> bool:
        return self.runner is not None

    # -- the scheduler ------------------------------------------------------------------------------
    def unload(self) -> None:
        with self._lock:
            if self.runner is None:
                return
            self._doomed = True
        threading.Thread(target=self._expire, daemon=True).start()

    def _expire(self) -> None:
        time.sleep(self.script.unload_delay_s)
        while True:  # the expired event is retried every 10 ms while a request holds the runner
            with self._lock:
                if self._holders <= 0:
                    self.runner, self._doomed = None, False
                    return
            time.sleep(0.01)

    def acquire(self, body: dict) -> float:
        """Get a runner for a request (loading it if needed); the seconds until it was ready."""
        started = time.perf_counter()
        opts = body.get("options") or {}
        wanted = {"options": {k: opts.get(k) for k in RUNNER_OPTIONS}, "shift": body.get("shift", True)}
        while True:
            with self._lock:
                if self.runner == wanted:
                    self._holders += 1
                    return time.perf_counter() - started
                if self.runner is None:
                    break
                self._doomed = True  # needsReload: expire the other runner, wait for its unload
            self._expire()
        time.sleep(self.script.load_s)
        with self._lock:
            self.runner, self._doomed, self.model = wanted, False, body["model"]
            self.loads += 1
            self._holders += 1
        n = opts.get("num_thread")
        self.log.append('time=2026-08-21T00:00:00.000Z level=INFO source=llama_server.go:433 '
                        'msg="starting llama-server" cmd="/usr/lib/ollama/llama-server --model '
                        '/tmp/ollama-store/blobs/sha256-0 --port 40000 --host 127.0.0.1 --no-webui --offline '
                        f'-c {opts.get("num_ctx")} -np 1 --log-verbosity 4 --no-log-prefix --no-log-timestamps '
                        f'--flash-attn auto' + (f" -t {n}" if n else "")
                        + (" --context-shift" if wanted["shift"] else "") + '"')
        self.log.append(f"system_info: n_threads = {n or 16} | CPU : SSE3 = 1 | AVX2 = 1 |")
        return time.perf_counter() - started

    def release(self) -> None:
        with self._lock:
            self._holders -= 1

    def ps(self) -> dict:
        with self._lock:
            if self.runner is None:
                return {"models": []}
            return {"models": [{"name": f"{self.model}:latest", "model": f"{self.model}:latest", "size": 0,
                                "digest": "", "expires_at": "2026-08-21T00:10:00Z", "size_vram": 0,
                                "context_length": self.runner["options"]["num_ctx"]}]}

    # -- llama-server and Ollama's stream --------------------------------------------------------------
    def events(self, body: dict):
        """(event text, token piece, seconds) per decoded token (text None: no event), then ("", None,
        stop_type): the final event."""
        opts = body.get("options") or {}
        stops = self.script.model_stop if opts.get("stop") is None else opts["stop"]
        budget, n_ctx, shift = opts.get("num_predict", -1), opts.get("num_ctx") or 2048, body.get("shift", True)
        cost = self.script.logprobs_cost_s if body.get("logprobs") else 0.0
        generated, sent, used = b"", 0, self.script.prompt_eval_count
        for decoded, (seconds, piece) in enumerate(self.script.tokens, start=1):
            raw = piece if isinstance(piece, bytes) else piece.encode()
            generated += raw
            used += 1
            try:
                text = generated.decode()[sent:]
            except UnicodeDecodeError:  # the text ends inside a character: no event
                text = None
            stop_at = next((text.find(s) for s in stops if text is not None and s in text), -1)
            if stop_at >= 0:
                yield text[:stop_at], raw, seconds + cost
                yield "", None, "word"
                return
            if text is None:
                yield None, raw, seconds + cost  # decoded and counted, but llama-server sends nothing
            else:
                held = any(text.endswith(s[:i]) for s in stops for i in range(1, len(s)))
                yield ("" if held else text), raw, seconds + cost
                sent += 0 if held else len(text)
            if decoded == budget:
                yield "", None, "limit"
                return
            if used >= n_ctx:  # the cache holds prompt + decoded - 1 tokens: one more would fill it
                if not shift:
                    yield "", None, "limit"
                    return
                self.shifts += 1
                used -= (used - 1) // 2
        yield "", b"", 0.0  # the end-of-sequence token: decoded and counted, no text
        yield "", None, "eos"


def _handler(double: OllamaDouble):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/api/version":
                self._json(200, {"version": "0.33.1-test-double"})
            elif self.path == "/api/ps":
                self._json(200, double.ps())
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path != "/api/generate":
                self._json(404, {"error": "not found"})
                return
            double.requests.append(body)
            if not body.get("prompt") and body.get("keep_alive") == 0:
                double.unload()
                self._json(200, {"model": body["model"], "done": True, "done_reason": "unload"})
                return
            arrived = time.perf_counter()
            load_s = double.acquire(body)
            try:
                if not body.get("prompt"):
                    self._json(200, {"model": body["model"], "done": True, "done_reason": "load"})
                else:
                    self._stream(body, arrived, load_s)
            finally:
                double.release()

        def _stream(self, body: dict, arrived: float, load_s: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(double.script.prefill_s)
            last, repeats, decoded, decode_s = "", 0, 0, 0.0
            for text, piece, extra in double.events(body):
                if piece is not None:
                    decoded += 1
                    time.sleep(extra)
                    decode_s += extra
                if text is None:
                    continue
                if text.strip() == last:  # Ollama's token repeat test, on every event
                    repeats += 1
                else:
                    last, repeats = text.strip(), 0
                if repeats > 30:
                    break  # no final chunk: the stream just ends
                if piece is None:
                    self._chunk({"model": body["model"], "response": text, "done": True,
                                 "done_reason": "length" if extra == "limit" else "stop",
                                 "total_duration": int((time.perf_counter() - arrived) * 1e9),
                                 "load_duration": int(load_s * 1e9),
                                 "prompt_eval_count": double.script.prompt_eval_count,
                                 "prompt_eval_duration": int(double.script.prefill_s * 1e9),
                                 "eval_count": decoded, "eval_duration": int(decode_s * 1e9)})
                    break
                if text:  # Ollama drops an event with empty text, and its logprobs with it
                    event = {"model": body["model"], "response": text, "done": False}
                    if body.get("logprobs"):
                        event["logprobs"] = [{"token": piece.decode("utf-8", "replace"), "logprob": -0.1}]
                    self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, event: dict) -> None:
            data = (json.dumps(event) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
