"""Downloading real models: retries, resume and hash checks, against a local HTTP server."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ModelError
from orchestrator.models import download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; the first request is cut off half way."""

    requests_seen: list = []
    cut_first = True

    def do_GET(self):  # noqa: N802 (http.server's naming)
        Handler.requests_seen.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if Handler.cut_first and len(Handler.requests_seen) == 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.requests_seen = []
    Handler.cut_first = True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/model.gguf"
    httpd.shutdown()


def test_resumes_after_a_dropped_connection(server, tmp_path):
    target = tmp_path / "gguf" / "model.gguf"
    download.fetch(server, hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD), target, lambda _: None)
    assert target.read_bytes() == PAYLOAD
    assert Handler.requests_seen[0] is None and Handler.requests_seen[-1].startswith("bytes=")
    assert not target.with_name("model.gguf.part").exists()


def test_wrong_hash_leaves_nothing_behind(server, tmp_path):
    Handler.cut_first = False
    target = tmp_path / "model.gguf"
    with pytest.raises(ModelError, match="nothing was kept"):
        download.fetch(server, "0" * 64, len(PAYLOAD), target, lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="failed after 2 attempts"):
        download.fetch("http://127.0.0.1:9/none", "0" * 64, 10, tmp_path / "m.gguf", lambda _: None, attempts=2)


def test_free_space_check(tmp_path, monkeypatch):
    from orchestrator.models import modelstore

    monkeypatch.setattr(modelstore.shutil, "disk_usage", lambda _: type("U", (), {"free": 2**30})())
    modelstore.check_free_space(tmp_path, 2**29, "x")
    with pytest.raises(ModelError, match="needs up to 2.0 GiB .* only 1.0 GiB is free"):
        modelstore.check_free_space(tmp_path, 2 * 2**30, "x")


def test_real_catalogue_entries_are_downloaded_not_made(tmp_path, server, monkeypatch):
    from orchestrator.models import catalogue, modelstore

    text = (f"version: 1\nmodels:\n  - id: real-one\n    context_length: 128\n    downloads:\n      gguf-q8_0: "
            f"{{url: '{server}', sha256: '{hashlib.sha256(PAYLOAD).hexdigest()}', size: {len(PAYLOAD)}}}\n")
    path = tmp_path / "catalogue.yaml"
    path.write_text(text)
    entries = catalogue.load.__wrapped__(path)
    monkeypatch.setattr(catalogue, "load", lambda: entries)
    done = modelstore.prepare(None, "real-one", ["gguf-q8_0"], tmp_path / "logs", lambda _: None, root=tmp_path / "store")
    item = done["gguf-q8_0"]
    assert (item.folder / item.relpath).read_bytes() == PAYLOAD
    assert item.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert modelstore.verify(item.folder) == []
    (item.folder / item.relpath).write_bytes(b"tampered")
    assert "has sha256" in modelstore.verify(item.folder)[0]
    assert Path(item.folder / "manifest.json").is_file()
