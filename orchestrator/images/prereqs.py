"""Before an IMAGE is built: what its Dockerfile needs from outside this machine, and whether it can be had.

Some IMAGEs start from an official image that only a container registry gives (Ollama,
the .NET SDK) or fetch sources from a host that may be unreachable (GitHub). Instead of
a build that fails late or a pull that hangs, :func:`check` looks for each needed base
image locally, tries a pull for at most a few seconds, probes each declared source, and
raises ImageBuildError naming what is missing and how to provide it.

A Dockerfile declares a source it fetches with a comment line:

    # orchestrate-needs: https://github.com/owner/repo unless SOURCE_ARG=local
    # orchestrate-needs: ${FEED_ARG} unless FEED_ARG=local

(an ARG in the address is replaced by its value, so a mirror given as a build argument is
the one probed).

Debian bases named by ``ARG BASE_IMAGE`` are left to baseimage.py, which can make them.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import ImageBuildError
from orchestrator.images import baseimage

ARG_LINE = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?", re.MULTILINE)
FROM_LINE = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.MULTILINE | re.IGNORECASE)
NEEDS_LINE = re.compile(r"^#\s*orchestrate-needs:\s*(\S+)(?:\s+unless\s+([A-Za-z_]\w*)=(\S+))?\s*$", re.MULTILINE)
PULL_BUDGET_S = 6.0  # all pulls of one check together: a machine without a registry answers in seconds
PROBE_TIMEOUT_S = 3.0


class Images(Protocol):
    """What the check needs from the Docker engine (dockerapi.Docker, or a fake in unit tests)."""

    def image_id(self, ref: str) -> str | None: ...

    def pull(self, ref: str) -> bool: ...


@dataclass(frozen=True)
class Needs:
    """What a Dockerfile needs from outside: base images to pull, sources to fetch."""

    base_images: tuple[tuple[str | None, str], ...]  # (the ARG that names it, or None; the reference)
    sources: tuple[str, ...]


def _expand(ref: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), ref)


def needs(dockerfile: str, buildargs: dict | None = None) -> Needs:
    """The base images and declared sources of a Dockerfile under these build arguments (pure)."""
    args = {name: default for name, default in ARG_LINE.findall(dockerfile) if default}
    args.update({k: str(v) for k, v in (buildargs or {}).items()})
    stages: set[str] = set()
    bases: list[tuple[str | None, str]] = []
    for ref, stage in FROM_LINE.findall(dockerfile):
        image = _expand(ref, args)
        named = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", ref)
        if image.lower() not in stages and image != "scratch" and "$" not in image:
            # A Debian BASE_IMAGE baseimage.py makes locally when it cannot be pulled.
            if not (named and named.group(1) == "BASE_IMAGE" and baseimage.suite_of(image)):
                bases.append((named.group(1) if named else None, image))
        if stage:
            stages.add(stage.lower())
    # A source may name an ARG (`${NUGET_SOURCE}`): the probe then goes where the build will go.
    sources = [_expand(url, args) for url, arg, value in NEEDS_LINE.findall(dockerfile)
               if not (arg and args.get(arg) == value)]
    return Needs(tuple(dict.fromkeys(bases)), tuple(dict.fromkeys(sources)))


def pull_within(docker: Images, ref: str, timeout_s: float) -> bool:
    """Try ``docker.pull(ref)`` for at most ``timeout_s`` seconds (a pull that hangs is left behind)."""
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(docker.pull(ref)), daemon=True)
    worker.start()
    worker.join(max(timeout_s, 0.0))
    return bool(done and done[0])


def reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url`` answers (any HTTP status), else why not."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
        return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def how_to_load(ref: str, name: str) -> str:
    """What a user without a registry does to provide a base image."""
    tagged = ref.split("@")[0]
    archive = re.sub(r"[^A-Za-z0-9.-]+", "-", tagged).strip("-") + ".tar"
    digest = ref.partition("@")[2] or "the pinned one"
    return (f"on a machine that can pull it: `docker pull {tagged}` (check that its digest is {digest}) and "
            f"`docker save {tagged} -o {archive}`; here: `docker load -i {archive}`, then "
            f"`orchestrate build {name}` again (see images/{name}/README.md)")


def check(docker: Images, name: str, tag: str, dockerfile: str, buildargs: dict | None = None,
          probe: Callable[[str], str | None] = reachable, pull_budget_s: float = PULL_BUDGET_S) -> dict[str, str]:
    """Raise ImageBuildError naming every missing base image and unreachable source, with how to provide each.

    Returns build arguments to use instead of the declared ones: a base pinned as
    ``name:tag@sha256:...`` that is here only as ``name:tag`` (`docker load` keeps no
    registry digest) is built on as ``name:tag``; the IMAGE's labels then name that base.
    """
    wanted = needs(dockerfile, buildargs)
    deadline = time.monotonic() + pull_budget_s
    missing, instead = [], {}
    for arg, ref in wanted.base_images:
        if docker.image_id(ref):
            continue
        tagged = ref.split("@")[0]
        if "@" in ref and arg and docker.image_id(tagged):
            instead[arg] = tagged  # loaded from an archive: its digest cannot be checked here
            continue
        if pull_within(docker, ref, deadline - time.monotonic()):
            continue
        missing.append(f"the base image {ref} is not on this machine and could not be pulled "
                       f"(no registry gave it within {pull_budget_s:g} s); {how_to_load(ref, name)}")
    for url in wanted.sources:
        why = probe(url)
        if why is not None:
            missing.append(f"the source {url} cannot be reached ({why}); see images/{name}/README.md for what to "
                           "use instead (a local checkout, a local feed or a mirror)")
    if missing:
        raise ImageBuildError(tag, f"images/{name} cannot be built on this machine: " + "; ".join(missing))
    return instead
