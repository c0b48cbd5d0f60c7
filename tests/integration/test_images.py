"""Building IMAGEs through the real Docker engine."""

import shutil
import uuid

import pytest
from testcontainers.core.container import DockerContainer

from orchestrator.errors import ImageBuildError
from orchestrator.images import imagebuild


def test_unchanged_folder_is_not_rebuilt_and_a_change_gets_a_new_tag(docker, logs_dir, tmp_path, monkeypatch):
    first = imagebuild.ensure(docker, "testengine", logs_dir)
    again = imagebuild.ensure(docker, "testengine", logs_dir)
    assert again.tag == first.tag and again.id == first.id and not again.rebuilt
    assert first.tag.startswith("orchestrate/testengine:")
    copy = tmp_path / "images"
    shutil.copytree(imagebuild.IMAGES_DIR / "testengine", copy / "testengine")
    marker = f"\n# changed {uuid.uuid4()}\n"  # a change never built before
    (copy / "testengine" / "runner.py").write_text((copy / "testengine" / "runner.py").read_text() + marker)
    monkeypatch.setattr(imagebuild, "IMAGES_DIR", copy)
    changed = imagebuild.ensure(docker, "testengine", logs_dir)
    try:
        assert changed.tag != first.tag and changed.rebuilt
        assert changed.labels["orchestrate.context"] == changed.tag.rsplit(":", 1)[1]
    finally:
        docker.client.images.remove(changed.tag)


def test_a_failed_build_reports_the_tail_of_its_log(docker, logs_dir, tmp_path, monkeypatch, no_leftovers):
    folder = tmp_path / "images" / "broken"
    folder.mkdir(parents=True)
    base = imagebuild.default_base((imagebuild.IMAGES_DIR / "testengine" / "Dockerfile").read_text())
    (folder / "Dockerfile").write_text(f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n"
                                       "RUN echo about to fail && echo 'the reason is here' >&2 && exit 7\n")
    monkeypatch.setattr(imagebuild, "IMAGES_DIR", tmp_path / "images")
    with pytest.raises(ImageBuildError) as caught:
        imagebuild.ensure(docker, "broken", logs_dir)
    message = str(caught.value)
    assert "returned a non-zero code: 7" in message
    assert "the reason is here" in message
    assert caught.value.log_path and "the reason is here" in open(caught.value.log_path).read()


def test_runner_images_run_unprivileged_and_carry_no_build_ca(docker, logs_dir):
    built = imagebuild.ensure(docker, "llama.cpp", logs_dir)
    script = "id -u; test ! -e /tmp/build-ca && ! ls /.build-ca 2>/dev/null && echo no-ca; command -v orchestrate-runner"
    container = DockerContainer(built.tag).with_kwargs(entrypoint=["sh", "-c"]).with_command([script])
    with container:
        exit_code = container.get_wrapped_container().wait(timeout=60)["StatusCode"]
        out = container.get_wrapped_container().logs().decode()
    assert exit_code == 0, out
    lines = out.split()
    assert lines[0] != "0", "the runner image must not run as root"
    assert "no-ca" in lines
    assert built.labels.get("orchestrate.engine") == "llama.cpp"
