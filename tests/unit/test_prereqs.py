"""What an IMAGE needs from outside this machine, and the fast, explained failure when it is not there."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import ImageBuildError
from orchestrator.images import imagebuild, prereqs

OLLAMA = "ollama/ollama:0.33.1@sha256:" + "a" * 64
DOCKERFILE = f"""ARG BASE_IMAGE={OLLAMA}
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0@sha256:{"b" * 64}
ARG SOURCE=git
# orchestrate-needs: https://github.com/example/engine unless SOURCE=local
FROM ${{SDK_IMAGE}} AS build
FROM build AS more
FROM ${{BASE_IMAGE}}
"""


class FakeDocker:
    """Images by reference; pull gives what ``pullable`` holds, after ``pull_s`` seconds."""

    def __init__(self, local=(), pullable=(), pull_s=0.0):
        self.local, self.pullable, self.pull_s = set(local), set(pullable), pull_s
        self.pulled: list[str] = []

    def image_id(self, ref):
        return f"sha256:{abs(hash(ref))}" if ref in self.local else None

    def pull(self, ref):
        time.sleep(self.pull_s)
        self.pulled.append(ref)
        if ref in self.pullable:
            self.local.add(ref)
            return True
        return False


def test_needs_lists_the_base_images_behind_args_and_skips_stages_and_debian_bases():
    found = prereqs.needs(DOCKERFILE)
    assert found.base_images == (("SDK_IMAGE", f"mcr.microsoft.com/dotnet/sdk:10.0@sha256:{'b' * 64}"),
                                 ("BASE_IMAGE", OLLAMA))
    assert found.sources == ("https://github.com/example/engine",)
    assert prereqs.needs(DOCKERFILE, {"SOURCE": "local"}).sources == ()
    debian = ("ARG BASE_IMAGE=debian:bookworm-slim@sha256:" + "c" * 64
              + "\nFROM ${BASE_IMAGE} AS build\nFROM ${BASE_IMAGE}\n")
    assert prereqs.needs(debian) == prereqs.Needs((), ())


def test_every_shipped_dockerfile_parses_and_only_ollama_and_smallmind_need_a_registry():
    needing = {name for name in imagebuild.available()
               if prereqs.needs((imagebuild.IMAGES_DIR / name / "Dockerfile").read_text()).base_images}
    assert needing == {"ollama", "smallmind"}


def test_missing_images_and_sources_are_named_with_how_to_provide_them_within_seconds():
    docker = FakeDocker(pull_s=0.2)
    started = time.monotonic()
    with pytest.raises(ImageBuildError) as caught:
        prereqs.check(docker, "ollama", "orchestrate/ollama:abc", DOCKERFILE, probe=lambda url: "no route to host")
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert OLLAMA in message and "docker load -i ollama-ollama-0.33.1.tar" in message
    assert "docker save ollama/ollama:0.33.1" in message and "sdk:10.0" in message
    assert "https://github.com/example/engine cannot be reached (no route to host)" in message
    assert ImageBuildError.exit_code == 3


def test_a_pull_that_hangs_is_given_up_within_the_budget():
    docker = FakeDocker(pull_s=30)
    started = time.monotonic()
    with pytest.raises(ImageBuildError, match="could not be pulled"):
        prereqs.check(docker, "ollama", "t", DOCKERFILE, {"SOURCE": "local"}, pull_budget_s=0.5)
    assert time.monotonic() - started < 3


def test_local_or_pullable_bases_and_a_local_source_pass():
    sdk = f"mcr.microsoft.com/dotnet/sdk:10.0@sha256:{'b' * 64}"
    docker = FakeDocker(local={sdk}, pullable={OLLAMA})
    assert prereqs.check(docker, "ollama", "t", DOCKERFILE, {"SOURCE": "local"}) == {}
    assert docker.pulled == [OLLAMA]


def test_a_base_loaded_from_an_archive_without_its_digest_is_built_on_by_tag():
    docker = FakeDocker(local={"ollama/ollama:0.33.1", f"mcr.microsoft.com/dotnet/sdk:10.0@sha256:{'b' * 64}"})
    instead = prereqs.check(docker, "ollama", "t", DOCKERFILE, {"SOURCE": "local"})
    assert instead == {"BASE_IMAGE": "ollama/ollama:0.33.1"} and docker.pulled == []


def test_smallmind_needs_its_repository_and_a_nuget_feed_each_with_a_local_stand_in():
    dockerfile = (imagebuild.IMAGES_DIR / "smallmind" / "Dockerfile").read_text()
    repo, nuget = "https://github.com/justinamiller/SmallMind", "https://api.nuget.org/v3/index.json"
    assert prereqs.needs(dockerfile).sources == (repo, nuget)
    assert prereqs.needs(dockerfile, {"SMALLMIND_SOURCE": "local"}).sources == (nuget,)
    assert prereqs.needs(dockerfile, {"NUGET_SOURCE": "local"}).sources == (repo,)
    mirror = "https://nuget.example.org/v3/index.json"  # a mirror given as a build argument is the one probed
    assert prereqs.needs(dockerfile, {"SMALLMIND_SOURCE": "local", "NUGET_SOURCE": mirror}).sources == (mirror,)
    assert prereqs.needs(dockerfile, {"SMALLMIND_SOURCE": "local", "NUGET_SOURCE": "local"}).sources == ()
    bases = dict(prereqs.needs(dockerfile).base_images)
    assert bases["SDK_IMAGE"].startswith("mcr.microsoft.com/dotnet/sdk:10.0.400@sha256:")
    assert bases["BASE_IMAGE"].startswith("mcr.microsoft.com/dotnet/runtime:10.0.11@sha256:")


def test_an_unreachable_feed_is_named_with_where_to_look_for_a_stand_in():
    dockerfile = (imagebuild.IMAGES_DIR / "smallmind" / "Dockerfile").read_text()
    docker = FakeDocker(local={ref for _, ref in prereqs.needs(dockerfile).base_images})
    with pytest.raises(ImageBuildError) as caught:
        prereqs.check(docker, "smallmind", "t", dockerfile, {"SMALLMIND_SOURCE": "local"}, probe=lambda url: "refused")
    assert "the source https://api.nuget.org/v3/index.json cannot be reached (refused)" in str(caught.value)
    assert "a local checkout, a local feed or a mirror" in str(caught.value)
