"""bundle.py and reproduce.py on made-up RUN folders (no Docker), and IMAGE tags that do not depend on the base."""

import io
import json
import shutil
import tarfile

import pytest

from orchestrator import reproduce
from orchestrator.compare import bundle, ratios
from orchestrator.errors import ModelError
from orchestrator.images import imagebuild
from orchestrator.matrix import matrixfile
from orchestrator.plan import planner
from orchestrator.results import rundata
from tests.unit import runs

MATRIX = """version: 1
engines: [{name: llama.cpp}]
models: [{id: tinystories-15m, formats: [gguf-f32]}]
threads: [1]
workloads: [{name: w, prompt: "Once upon a time", gen_tokens: 5}]
repetitions: 5
"""


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATE_MODEL_STORE", str(tmp_path / "store"))
    return tmp_path / "store"


def made_up_run(root, tag=None, sha=runs.SHA):
    """A RUN folder of the MATRIX above, as if this checkout had run it."""
    (cell,) = planner.expand(matrixfile.parse(MATRIX))
    tag = tag or imagebuild.tag_for("llama.cpp")
    doc = runs.run_doc([cell.cell_id], tag=tag, sha=sha, matrix_text=MATRIX)
    return runs.write_folder(root, doc, [runs.cell_record(cell.cell_id, tag=tag, sha=sha)])


def tamper(path, member, change):
    """Rewrite one JSON member of a bundle (what a careless or hostile sender could do)."""
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if info.name == member:
                data = json.dumps(change(json.loads(data))).encode()
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_bundle_holds_records_matrix_contexts_and_host(tmp_path, store):
    folder = made_up_run(tmp_path / "results")
    out = bundle.write(folder, tmp_path / "b.tar.gz", progress=lambda _: None)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"bundle.json", "matrix.yaml", "host.json", "run/run.json"} <= names
    assert any(n.endswith("/record.json") for n in names)
    unpacked = bundle.extract(out, tmp_path / "x")
    document = bundle.read_manifest(unpacked)
    row = document["images"]["llama.cpp"]
    assert row["context_matches_run"] and row["context"]["tag"] == imagebuild.tag_for("llama.cpp")
    assert "Dockerfile" in row["context"]["files"] and row["archive"] is None
    assert document["models"]["tinystories-15m/gguf-f32"]["sha256"] == runs.SHA
    assert (unpacked / "matrix.yaml").read_text() == MATRIX
    with pytest.raises(bundle.BundleError, match="never overwritten"):
        bundle.write(folder, out, progress=lambda _: None)


def test_compare_reads_a_bundle_like_a_folder(tmp_path, store):
    folder = made_up_run(tmp_path / "results")
    out = bundle.write(folder, tmp_path / "b.tar.gz", progress=lambda _: None)
    a, b = bundle.open_run(folder, tmp_path / "s"), bundle.open_run(out, tmp_path / "s")
    assert [c.verdict for c in ratios.compare(a, b)] == [ratios.SAME]
    assert b.source == str(out)


def test_a_bundle_with_an_altered_model_hash_is_refused_naming_the_model_and_both_hashes(tmp_path, store):
    made_here = "c" * 64
    out = bundle.write(made_up_run(tmp_path / "results", sha=made_here), tmp_path / "b.tar.gz",
                       progress=lambda _: None)

    def alter(doc):
        doc["models"]["tinystories-15m/gguf-f32"]["sha256"] = "d" * 64
        return doc

    tamper(out, "run/run.json", alter)
    ran = []
    with pytest.raises(ModelError) as refused:
        reproduce.reproduce(out, tmp_path / "new", progress=lambda _: None,
                            models_maker=lambda keys: {k: made_here for k in keys},
                            execute=lambda *a, **k: ran.append(a))
    message = str(refused.value)
    assert "tinystories-15m/gguf-f32" in message and "d" * 64 in message and made_here in message
    assert not ran


def test_a_bundle_whose_image_context_differs_is_refused_unless_forced(tmp_path, store):
    old_tag = "orchestrate/llama.cpp:000000000000"
    out = bundle.write(made_up_run(tmp_path / "results", tag=old_tag), tmp_path / "b.tar.gz",
                       progress=lambda _: None)

    def other_file(doc):
        doc["images"]["llama.cpp"]["context"]["files"]["runner.cpp"] = "644:" + "0" * 64
        return doc

    tamper(out, "bundle.json", other_file)
    maker = lambda keys: {k: runs.SHA for k in keys}  # noqa: E731
    with pytest.raises(reproduce.NotReproducible) as refused:
        reproduce.reproduce(out, tmp_path / "new", progress=lambda _: None, models_maker=maker,
                            execute=lambda *a, **k: None)
    assert "images/llama.cpp" in str(refused.value) and old_tag in str(refused.value)
    assert "runner.cpp" in str(refused.value) and "--force" in str(refused.value)


def test_reproduce_runs_the_bundles_matrix_and_compares(tmp_path, store):
    original = made_up_run(tmp_path / "results")
    out = bundle.write(original, tmp_path / "b.tar.gz", progress=lambda _: None)
    calls = []

    def execute(loaded, results_root, progress, shard=None, reproduces=None):
        """Stands in for execute_run: the same CELLs measured again, a little differently."""
        calls.append((loaded.raw, shard, reproduces))
        doc = json.loads((original / "run.json").read_text())
        doc["run_id"], doc["reproduces"] = "20260102T000000Z-123456", reproduces
        recs = [json.loads(p.read_text()) for p in original.glob("cells/*/record.json")]
        for rec in recs:
            for rep in rec["result"]["repetitions"]:
                rep["decode_s"] *= 1.01
                rep["inter_token_latencies_s"] = [x * 1.01 for x in rep["inter_token_latencies_s"]]
        return runs.write_folder(results_root, doc, recs)

    done = reproduce.reproduce(out, tmp_path / "new", progress=lambda _: None,
                               models_maker=lambda keys: {k: runs.SHA for k in keys}, execute=execute)
    assert calls[0][0] == MATRIX and calls[0][1] is None and calls[0][2]["run_id"] == runs.RUN_ID
    assert [c.verdict for c in done.compared] == [ratios.SAME]
    assert done.report.is_file() and (done.report.parent / "ratios.json").is_file()
    assert rundata.load(done.run_dir).info.run_id == "20260102T000000Z-123456"


def test_reproduce_puts_bundled_model_files_into_an_empty_store(tmp_path, store):
    bundled = tmp_path / "bundle"
    (bundled / "models" / "m-1").mkdir(parents=True)
    (bundled / "models" / "m-1" / "manifest.json").write_text("{}")
    document = {"models": {"m/gguf-f32": {"folder": "m-1", "included": True}}}
    assert reproduce.install_models(bundled, document, store, lambda _: None) == ["m-1"]
    assert (store / "m-1" / "manifest.json").is_file()
    assert reproduce.install_models(bundled, document, store, lambda _: None) == []  # never over a store folder


def test_image_tags_name_the_declared_base_not_the_local_one(tmp_path):
    files = [("Dockerfile", b"ARG BASE_IMAGE=debian:bookworm-slim@sha256:" + b"a" * 64 + b"\nFROM ${BASE_IMAGE}\n",
              0o644)]
    declared = imagebuild.default_base(files[0][1].decode())
    pulled = imagebuild.content_hash(files, imagebuild.tag_args({}, declared))
    assert pulled == imagebuild.content_hash(files, imagebuild.tag_args({}, declared))  # whatever base id is local
    assert pulled != imagebuild.content_hash(files, imagebuild.tag_args({"BASE_IMAGE": "orchestrate/base:bookworm"},
                                                                declared))


def test_a_native_build_puts_the_cpus_features_into_the_tag():
    zen = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n"
    old = "processor\t: 0\nmodel name\t: Intel Xeon E5\nflags\t\t: fpu sse2 avx2\n"
    assert imagebuild.host_cpu_key(zen) != imagebuild.host_cpu_key(old)
    assert imagebuild.host_cpu_key(zen) == imagebuild.host_cpu_key(zen.replace("avx2 avx512f", "avx512f avx2"))
    portable = imagebuild.tag_args({}, "debian:x")
    assert "cpu_features" not in portable
    for native in ({"CPU_BUILD": "native"}, {"TARGET_CPU": "native"}):
        assert imagebuild.tag_args(native, "debian:x", imagebuild.host_cpu_key(zen))["cpu_features"] == \
            imagebuild.host_cpu_key(zen)


class FakeDocker:
    """Just enough of dockerapi.Docker for imagebuild.ensure: a machine with a pulled or a locally made base."""

    def __init__(self, base_ref):
        self.refs = {base_ref: "sha256:base-" + base_ref}
        self.labels = {}

    def image_id(self, ref):
        return self.refs.get(ref)

    def image_labels(self, ref):
        return self.labels.get(ref, {})

    def pull(self, ref, platform=None):
        return False

    def image_architecture(self, ref):
        return "amd64" if ref in self.refs else None

    def tag(self, image, ref):
        self.refs[ref] = image

    def build(self, context, tag, buildargs, labels, log_path, on_line=None, platform=None):
        self.refs[tag], self.labels[tag] = "sha256:built", labels
        return "sha256:built"


def test_a_pulled_and_a_debootstrapped_base_give_the_same_tag_and_record_which(tmp_path, monkeypatch):
    engine = tmp_path / "images" / "eng"
    engine.mkdir(parents=True)
    ref = "debian:bookworm-slim@sha256:" + "a" * 64
    (engine / "Dockerfile").write_text(f"ARG BASE_IMAGE={ref}\nFROM ${{BASE_IMAGE}}\n")
    monkeypatch.setattr(imagebuild, "IMAGES_DIR", tmp_path / "images")
    monkeypatch.setattr(imagebuild, "ca_bundle", lambda: b"")
    pulled = imagebuild.ensure(FakeDocker(ref), "eng", tmp_path / "logs", lambda _: None)
    local = imagebuild.ensure(FakeDocker("orchestrate/base:bookworm"), "eng", tmp_path / "logs", lambda _: None)
    assert pulled.tag == local.tag == imagebuild.tag_for("eng")
    assert (pulled.base, local.base) == (ref, "orchestrate/base:bookworm")  # run.json and the bundle say which
    assert local.labels["orchestrate.base_id"] == "sha256:base-orchestrate/base:bookworm"


def test_an_image_under_its_old_base_id_tag_is_named_not_rebuilt(tmp_path, monkeypatch):
    engine = tmp_path / "images" / "eng"
    engine.mkdir(parents=True)
    (engine / "Dockerfile").write_text("ARG BASE_IMAGE=debian:bookworm-slim@sha256:" + "a" * 64 +
                                       "\nFROM ${BASE_IMAGE}\n")
    monkeypatch.setattr(imagebuild, "IMAGES_DIR", tmp_path / "images")
    docker = FakeDocker("orchestrate/base:bookworm")
    files = imagebuild.context_files(engine)
    old = imagebuild.content_hash(files, {"BASE_IMAGE": "orchestrate/base:bookworm",
                                      "base_id": "sha256:base-orchestrate/base:bookworm"})
    docker.refs[f"orchestrate/eng:{old}"] = "sha256:old"
    docker.build = None  # a build would fail the test
    built = imagebuild.ensure(docker, "eng", tmp_path / "logs", lambda _: None)
    assert (built.id, built.rebuilt, built.tag) == ("sha256:old", False, imagebuild.tag_for("eng"))


def test_extract_refuses_links(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("bundle.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(bundle.BundleError, match="is a symbolic link; only regular files and folders"):
        bundle.extract(evil, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    shutil.rmtree(tmp_path / "x", ignore_errors=True)
