"""A small HTTP client for llama-server on loopback: start and stop it, JSON calls, timed token streams.

Standard library only. The stream is read as server-sent events (`data: {...}` lines);
each event that carries token ids is stamped with time.perf_counter on arrival, which is
where the client-side TTFT and inter-token latencies come from.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field


class ServerError(RuntimeError):
    """The server did not start, answered with an error, or streamed something unexpected."""


@dataclass
class Streamed:
    """One streamed completion as the client saw it."""

    sent: float  # perf_counter when the request was sent
    arrivals: list[tuple[float, list[int]]] = field(default_factory=list)  # (arrival time, token ids) per event
    final: dict = field(default_factory=dict)  # the last event (stop: true), with the server's timings
    events: int = 0

    def token_ids(self) -> list[int]:
        return [token for _, tokens in self.arrivals for token in tokens]

    def repetition(self, index: int, prompt_tokens: int, gen_tokens: int, prefill_s: float) -> dict:
        """The contract's repetition from the arrivals; one token per event, exactly gen_tokens in all."""
        ids = self.token_ids()
        if len(ids) != gen_tokens:
            raise ServerError(f"the server streamed {len(ids)} tokens, {gen_tokens} were asked "
                              f"(stop_type {self.final.get('stop_type')!r})")
        if any(len(tokens) != 1 for _, tokens in self.arrivals):
            raise ServerError("an event carried several token ids: per-token latencies cannot be seen at the client")
        times = [arrival for arrival, _ in self.arrivals]
        latencies = [later - earlier for earlier, later in zip(times, times[1:])]
        return {"index": index, "prompt_tokens": prompt_tokens, "generated_tokens": len(ids),
                "prefill_s": prefill_s, "decode_s": sum(latencies), "ttft_s": times[0] - self.sent,
                "inter_token_latencies_s": latencies, "token_ids": ids}


class Client:
    """JSON over HTTP/1.1 to one server on 127.0.0.1."""

    def __init__(self, port: int, timeout_s: float = 600.0) -> None:
        self.port, self.timeout_s = port, timeout_s

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        connection = self._connection()
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            try:
                return response.status, json.loads(text) if text else {}
            except json.JSONDecodeError:
                return response.status, {"text": text}
        finally:
            connection.close()

    def get(self, path: str) -> dict:
        status, data = self.call("GET", path)
        if status != 200:
            raise ServerError(f"GET {path}: HTTP {status}: {data}")
        return data

    def post(self, path: str, body: dict) -> dict:
        status, data = self.call("POST", path, body)
        if status != 200:
            raise ServerError(f"POST {path}: HTTP {status}: {data}")
        return data

    def stream(self, path: str, body: dict) -> Streamed:
        """POST a streamed completion; stamp every event that carries token ids as it arrives."""
        clock = time.perf_counter
        connection = self._connection()
        connection.connect()  # the TCP handshake is not part of the request's time
        try:
            payload = json.dumps(body).encode()
            streamed = Streamed(sent=clock())
            connection.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            if response.status != 200:
                raise ServerError(f"POST {path}: HTTP {response.status}: {response.read()[:2000]!r}")
            while True:
                line = response.readline()
                now = clock()
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                if text.startswith("error:"):
                    raise ServerError(f"POST {path}: the server streamed an error: {text[6:].strip()}")
                if not text.startswith("data:"):
                    continue  # blank separator lines and SSE comments (pings)
                data = text[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                streamed.events += 1
                if "error" in event:
                    raise ServerError(f"POST {path}: the server streamed an error: {event['error']}")
                if event.get("tokens"):
                    streamed.arrivals.append((now, [int(t) for t in event["tokens"]]))
                if event.get("stop"):
                    streamed.final = event
                    break
            if not streamed.final:
                raise ServerError(f"POST {path}: the stream ended without a final event")
            return streamed
        finally:
            connection.close()


class Server:
    """A server process started by this runner; its output goes to ``sink``."""

    def __init__(self, command: list[str], sink, port: int) -> None:
        self.command, self.port = command, port
        try:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ServerError(f"cannot start {command[0]}: {exc}") from exc
        self.pid = self.process.pid

    def wait_healthy(self, timeout_s: float) -> Client:
        """Poll GET /health until it answers 200; a Client for the server."""
        client = Client(self.port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.command[0]} exited with status {self.process.returncode} before it was "
                                  "healthy (its log follows)")
            try:
                status, _ = Client(self.port, timeout_s=5.0).call("GET", "/health")
                if status == 200:
                    return client
            except (OSError, http.client.HTTPException):
                pass  # not listening yet
            time.sleep(0.02)
        raise ServerError(f"{self.command[0]} was not healthy after {timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
