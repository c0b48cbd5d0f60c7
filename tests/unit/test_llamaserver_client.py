"""The llama-server runner's HTTP client against a TEST DOUBLE of llama-server's streamed /completion.

The double is not llama-server and gives no real figures: it streams server-sent events
the way llama-server does (one token id per event, a final event with the server's own
timings), so the client's timing and checks are tested on any machine. The real server
runs in tests/integration/test_conformance.py and the RUNs of docs/engines-server.md.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "llama.cpp"))
import serverclient  # noqa: E402  (the runner's own module, standard library only)


def sse_double(events: list[tuple[float, dict]]):
    """A TEST DOUBLE of llama-server on loopback streaming ``events`` (delay before each, data)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delay, data in events:
                time.sleep(delay)
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def final(n: int) -> dict:
    return {"stop": True, "tokens": [], "stop_type": "limit",
            "timings": {"prompt_n": 8, "prompt_ms": 1.5, "cache_n": 0, "predicted_n": n, "predicted_ms": 3.0}}


def test_ttft_and_inter_token_latencies_come_from_event_arrivals():
    events = [(0.0, {"stop": False, "tokens": []}),  # the headers-only first event carries no token
              (0.03, {"stop": False, "tokens": [11]}), (0.01, {"stop": False, "tokens": [12]}),
              (0.01, {"stop": False, "tokens": [13]}), (0.0, final(3))]
    server, received = sse_double(events)
    try:
        streamed = serverclient.Client(server.server_address[1]).stream("/completion", {"prompt": [1, 2]})
    finally:
        server.shutdown()
    rep = streamed.repetition(0, 8, 3, prefill_s=0.0015)
    assert rep["token_ids"] == [11, 12, 13] and len(rep["inter_token_latencies_s"]) == 2
    assert rep["ttft_s"] >= 0.03 > rep["prefill_s"]
    assert rep["decode_s"] == pytest.approx(streamed.arrivals[-1][0] - streamed.arrivals[0][0])
    assert streamed.final["timings"]["predicted_n"] == 3 and received == [{"prompt": [1, 2]}]


def test_fewer_tokens_than_asked_or_several_per_event_are_errors():
    server, _ = sse_double([(0.0, {"stop": False, "tokens": [5]}), (0.0, final(1))])
    try:
        streamed = serverclient.Client(server.server_address[1]).stream("/completion", {})
    finally:
        server.shutdown()
    with pytest.raises(serverclient.ServerError, match="streamed 1 tokens, 2 were asked"):
        streamed.repetition(0, 8, 2, 0.001)
    server, _ = sse_double([(0.0, {"stop": False, "tokens": [5, 6]}), (0.0, final(2))])
    try:
        streamed = serverclient.Client(server.server_address[1]).stream("/completion", {})
    finally:
        server.shutdown()
    with pytest.raises(serverclient.ServerError, match="several token ids"):
        streamed.repetition(0, 8, 2, 0.001)


def test_a_stream_without_its_final_event_is_an_error():
    server, _ = sse_double([(0.0, {"stop": False, "tokens": [5]})])
    try:
        with pytest.raises(serverclient.ServerError, match="without a final event"):
            serverclient.Client(server.server_address[1]).stream("/completion", {})
    finally:
        server.shutdown()
