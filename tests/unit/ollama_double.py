"""A TEST DOUBLE of Ollama's HTTP API, on loopback, for the Ollama runner's client tests.

It is not Ollama and produces no real figures: it answers /api/version and /api/generate
the way Ollama 0.33 does (newline-delimited JSON chunks, ``done``/``done_reason``, load
and unload requests without a prompt) and streams a scripted generation, so the client
logic (chunk counting, timing, short generations, unload) is tested on any machine.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """What the double streams for a prompt: chunks of (delay before it in s, token texts or None for no logprobs)."""

    chunks: list[tuple[float, list[str] | str]] = field(default_factory=list)
    done_reason: str = "length"
    logprobs: bool = True
    unload_answer: str = "unload"


class OllamaDouble:
    """TEST DOUBLE of Ollama's API: ``with OllamaDouble(script) as double: Client(double.port)``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict] = []  # every /api/generate body, in order
        self.loaded = False
        double = self

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
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/generate":
                    self._json(404, {"error": "not found"})
                    return
                double.requests.append(body)
                if not body.get("prompt"):
                    if body.get("keep_alive") == 0:
                        double.loaded = False
                        self._json(200, {"model": body["model"], "done": True,
                                         "done_reason": double.script.unload_answer})
                    else:
                        double.loaded = True
                        self._json(200, {"model": body["model"], "done": True, "done_reason": "load"})
                    return
                double.loaded = True
                self._stream(body)

            def _stream(self, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                count = 0
                for delay, tokens in double.script.chunks:
                    time.sleep(delay)
                    text = tokens if isinstance(tokens, str) else "".join(tokens)
                    event = {"model": body["model"], "response": text, "done": False}
                    if double.script.logprobs and not isinstance(tokens, str):
                        event["logprobs"] = [{"token": t, "logprob": -0.1} for t in tokens]
                        count += len(tokens)
                    elif text:
                        count += 1
                    self._chunk(event)
                final = {"model": body["model"], "response": "", "done": True,
                         "done_reason": double.script.done_reason, "total_duration": 1000, "load_duration": 10,
                         "prompt_eval_count": 8, "prompt_eval_duration": 500, "eval_count": count,
                         "eval_duration": 400}
                self._chunk(final)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _chunk(self, event: dict) -> None:
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "OllamaDouble":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
