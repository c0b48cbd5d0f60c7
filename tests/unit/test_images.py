"""IMAGE content tags and build contexts."""

import io
import json
import tarfile

import pytest

from orchestrator.engines import ENGINES
from orchestrator.errors import UsageError
from orchestrator.images import baseimage, imagebuild


def make_folder(tmp_path, dockerfile="FROM x\n", extra=None):
    folder = tmp_path / "engine"
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    for name, text in (extra or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_same_content_same_tag_and_changes_change_it(tmp_path):
    folder = make_folder(tmp_path, extra={"runner.py": "print(1)\n"})
    files = imagebuild.context_files(folder)
    tag = imagebuild.content_hash(files, {"A": "1"})
    assert tag == imagebuild.content_hash(imagebuild.context_files(folder), {"A": "1"})
    assert tag != imagebuild.content_hash(files, {"A": "2"})
    (folder / "runner.py").write_text("print(2)\n")
    assert tag != imagebuild.content_hash(imagebuild.context_files(folder), {"A": "1"})
    assert len(tag) == 12


def test_generated_folders_are_not_part_of_the_context(tmp_path):
    folder = make_folder(tmp_path, extra={"__pycache__/x.pyc": "junk", ".build-ca/ca.pem": "cert", "a.txt": "a",
                                          "src/.ruff_cache/x": "cache", "src/y.pyc": "junk"})
    assert [rel for rel, _, _ in imagebuild.context_files(folder)] == ["Dockerfile", "a.txt"]


def test_folder_without_dockerfile_is_an_error(tmp_path):
    with pytest.raises(UsageError):
        imagebuild.context_files(tmp_path)


def test_context_tar_carries_the_ca_bundle_and_is_reproducible(tmp_path):
    files = imagebuild.context_files(make_folder(tmp_path, extra={"run.sh": "#!/bin/sh\n"}))
    first = imagebuild.context_tar(files, b"CERT")
    assert first == imagebuild.context_tar(files, b"CERT")
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert sorted(tar.getnames()) == [".build-ca/ca.pem", "Dockerfile", "run.sh"]
        assert tar.extractfile(".build-ca/ca.pem").read() == b"CERT"


def test_ca_bundle_prefers_the_orchestrate_variable(tmp_path, monkeypatch):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("MY CA")
    monkeypatch.setenv("ORCHESTRATE_BUILD_CA", str(bundle))
    assert imagebuild.ca_bundle() == b"MY CA"


def test_default_base_and_suite():
    text = "ARG BASE_IMAGE=debian:bookworm-slim@sha256:" + "a" * 64 + "\nFROM ${BASE_IMAGE}\n"
    base = imagebuild.default_base(text)
    assert base.startswith("debian:bookworm-slim@sha256:")
    assert baseimage.suite_of(base) == "bookworm"
    assert baseimage.suite_of("docker.io/library/debian:trixie-slim") == "trixie"
    assert baseimage.suite_of("ubuntu:24.04") is None


def test_every_engine_dockerfile_pins_its_base_by_digest():
    for name in imagebuild.available():
        text = (imagebuild.IMAGES_DIR / name / "Dockerfile").read_text()
        base = imagebuild.default_base(text)
        assert base and "@sha256:" in base, f"images/{name}/Dockerfile must pin its base image by digest"
        assert "# syntax=" not in text


def test_shared_parts_named_by_the_dockerfile_join_the_context(tmp_path, monkeypatch):
    shared = tmp_path / "_shared"
    (shared / "kit").mkdir(parents=True)
    (shared / "kit" / "helper.py").write_text("X = 1\n")
    (shared / "other").mkdir()
    (shared / "other" / "unused.py").write_text("Y = 1\n")
    monkeypatch.setattr(imagebuild, "SHARED_DIR", shared)
    user = make_folder(tmp_path, "FROM x\nCOPY _shared/kit/ /opt/kit/\n")
    files = [rel for rel, _, _ in imagebuild.context_files(user)]
    assert files == ["Dockerfile", "_shared/kit/helper.py"]
    before = imagebuild.content_hash(imagebuild.context_files(user), {})
    (shared / "kit" / "helper.py").write_text("X = 2\n")  # a change to shared code changes the tag
    assert imagebuild.content_hash(imagebuild.context_files(user), {}) != before


def test_a_dockerfile_naming_a_missing_shared_part_is_refused(tmp_path):
    folder = make_folder(tmp_path, "FROM x\nCOPY _shared/nothing-here/ /x/\n")
    with pytest.raises(UsageError, match="_shared/nothing-here"):
        imagebuild.context_files(folder)


def test_every_runner_image_gets_the_kit():
    for name in ("onnxruntime", "transformers", "testengine", "ollama", "llama.cpp", "candle", "smallmind"):
        rels = {rel for rel, _, _ in imagebuild.context_files(imagebuild.IMAGES_DIR / name)}
        assert {"_shared/runnerkit/job.py", "_shared/runnerkit/cell.schema.json",
                "_shared/runnerkit/options.schema.json"} <= rels, name


NATIVE_SOURCES = {"llama.cpp": ["runner.cpp"], "candle": ["src/main.rs", "src/model.rs", "src/perplexity.rs",
                                                          "src/facts.rs"]}


@pytest.mark.parametrize("engine", sorted(NATIVE_SOURCES))
def test_native_runners_leave_the_contract_to_the_kit(engine):
    """The contract lives once, in the runner kit: a native runner reads no job, hashes nothing, reads no
    /proc and writes no result file; its image starts the kit, which starts it (docs/contract.md)."""
    folder = imagebuild.IMAGES_DIR / engine
    for name in NATIVE_SOURCES[engine]:
        source = (folder / name).read_text()
        for word in ("/proc", "sha256", "job.json", "result.json", "rename("):
            assert word not in source, f"{engine}/{name} mentions {word!r}"
    dockerfile = (folder / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python3", "/opt/engine/runner.py"]' in dockerfile
    assert "COPY _shared/runnerkit/ /opt/engine/runnerkit/" in dockerfile


def test_an_image_folder_two_engines_share_carries_each_engines_options_declaration():
    files = {rel: content for rel, content, _ in imagebuild.context_files(imagebuild.IMAGES_DIR / "llama.cpp")}
    # both runners in the image use the kit, each with its own ENGINE's options declaration
    assert json.loads(files["_shared/runnerkit/options.schema.json"]) == ENGINES["llama.cpp"].options
    assert json.loads(files["_shared/runnerkit/options.llama-server.schema.json"]) == ENGINES["llama-server"].options
    assert json.loads(files["_shared/runnerkit/options.llama.cpp.schema.json"]) == ENGINES["llama.cpp"].options
    dockerfile = files["Dockerfile"].decode()
    assert ("COPY _shared/runnerkit/options.llama-server.schema.json /opt/server/runnerkit/options.schema.json"
            in dockerfile)


def test_torch_build_helpers_live_once_and_reach_both_pytorch_images():
    for name in ("transformers", "modelmaker"):
        rels = {rel for rel, _, _ in imagebuild.context_files(imagebuild.IMAGES_DIR / name)}
        assert {"_shared/torch/install_torch.sh", "_shared/torch/prune_cuda.py",
                "_shared/torch/requirements-torch.txt"} <= rels
        assert not (imagebuild.IMAGES_DIR / name / "build" / "install_torch.sh").exists()
    # The host-side lock tool is in no build context, so it is hashed into no IMAGE tag.
    assert not any("lock_requirements" in rel for name in imagebuild.available()
                   for rel, _, _ in imagebuild.context_files(imagebuild.IMAGES_DIR / name))
