"""Resolve an IMAGE's base: the pinned official image, or one made locally from Debian's archive.

A machine whose Docker engine can pull nothing (no registry) still builds every image:
the base is made with ``debootstrap --variant=minbase`` and imported as
``orchestrate/base:<suite>``. Its image id is recorded, and goes into the content tag
of every image built on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import DockerError
from orchestrator.host.dockerapi import Docker

LOCAL_REPOSITORY = "orchestrate/base"
SUITE = re.compile(r"^(?:docker\.io/)?(?:library/)?debian:(?P<suite>[a-z]+)")


def suite_of(ref: str) -> str | None:
    """'debian:bookworm-slim@sha256:...' -> 'bookworm'."""
    match = SUITE.match(ref)
    return match.group("suite") if match else None


_MAKING = threading.Lock()  # images built at once in threads share one base: it is made once


def resolve(docker: Docker, ref: str, progress: Callable[[str], None] = print,
            arch: str | None = None) -> tuple[str, str]:
    """The base image to build on, as (reference, image id); makes it locally when it cannot be pulled.

    ``arch`` (Docker's name, e.g. arm64) asks for another architecture than the host's: the base is
    pulled for that platform, or made with ``debootstrap --arch`` (qemu-user-static must be registered
    with binfmt_misc for its second stage) and tagged ``orchestrate/base:<suite>-<arch>``.
    """
    with _MAKING:
        return _resolve(docker, ref, progress, arch)


def _resolve(docker: Docker, ref: str, progress: Callable[[str], None], arch: str | None) -> tuple[str, str]:
    image = docker.image_id(ref)
    if image and (arch is None or docker.image_architecture(ref) == arch):
        return ref, image
    suite = suite_of(ref)
    local = (f"{LOCAL_REPOSITORY}:{suite}" + (f"-{arch}" if arch else "")) if suite else None
    if local and (image := docker.image_id(local)):
        return local, image
    progress(f"pulling base image {ref}" + (f" for linux/{arch}" if arch else ""))
    if docker.pull(ref, f"linux/{arch}" if arch else None):
        return ref, docker.image_id(ref) or ""
    if not suite:
        raise DockerError(f"cannot pull base image {ref} and cannot make it locally (only Debian bases can be "
                          "made with debootstrap); make the registry reachable or load the image with `docker load`")
    progress(f"no registry reachable: making {local} from Debian's archive with debootstrap")
    return local, make_local(docker, suite, progress, arch)


def make_local(docker: Docker, suite: str, progress: Callable[[str], None] = print, arch: str | None = None) -> str:
    """debootstrap a minimal Debian ``suite`` (for ``arch``) and import it as orchestrate/base:<suite>[-<arch>]."""
    if shutil.which("debootstrap") is None:
        raise DockerError("the base image cannot be pulled and `debootstrap` is not installed to make it locally: "
                          "install it (`apt-get install debootstrap`) or make a registry reachable")
    if os.geteuid() != 0:
        raise DockerError("making a base image with debootstrap needs root; run `orchestrate build` as root once, "
                          "or make a registry reachable")
    mirror = os.environ.get("ORCHESTRATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    with tempfile.TemporaryDirectory(prefix=f"orchestrate-{suite}-") as tmp:
        root = Path(tmp) / "rootfs"
        foreign = [f"--arch={arch}"] if arch else []
        done = subprocess.run(["debootstrap", "--variant=minbase", *foreign, suite, str(root), mirror],
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise DockerError(f"debootstrap {suite} from {mirror} failed (exit {done.returncode}):\n{tail}")
        progress(f"importing {suite} root filesystem")
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for entry in sorted(root.iterdir()):
                tar.add(entry, arcname=entry.name)
        return docker.import_rootfs(tar_path, LOCAL_REPOSITORY, suite + (f"-{arch}" if arch else ""),
                                    f"linux/{arch}" if arch else None)
