"""Build each ENGINE's IMAGE from images/<engine>/, tagged by a hash of its build context.

An unchanged folder (same files, same build arguments, same base image) is not rebuilt;
a changed one gets a new tag. On a machine whose Docker engine can pull nothing, the
base image is made locally from Debian's archive (see baseimage.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator import baseimage
from orchestrator.dockerapi import Docker
from orchestrator.errors import ImageBuildError, UsageError

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
REPOSITORY = "orchestrate"
CA_PATH = ".build-ca/ca.pem"  # where the build context carries extra CA certificates
# Generated files never belong to a build context: caches of tools run in the folder, build output.
SKIP = {"__pycache__", ".build-ca", "target", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv"}
BASE_ARG = re.compile(r"^ARG\s+BASE_IMAGE=(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Built:
    """An IMAGE ready to run."""

    name: str  # image folder name
    tag: str  # repository:contenthash
    id: str
    base: str  # the base image reference used
    base_id: str
    labels: dict
    log_path: str | None
    rebuilt: bool


def context_files(folder: Path) -> list[tuple[str, bytes, int]]:
    """The files of a build context as (relative path, content, mode), sorted by path."""
    if not (folder / "Dockerfile").is_file():
        raise UsageError(f"{folder} has no Dockerfile")
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIP for part in rel.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        files.append((rel.as_posix(), path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644))
    return files


def content_hash(files: list[tuple[str, bytes, int]], buildargs: dict) -> str:
    """12 hex digits over every path, mode, content and build argument."""
    digest = hashlib.sha256()
    for rel, content, mode in files:
        digest.update(f"{rel}\0{mode:o}\0{len(content)}\0".encode())
        digest.update(content)
    for key in sorted(buildargs):
        digest.update(f"arg\0{key}={buildargs[key]}\0".encode())
    return digest.hexdigest()[:12]


def context_tar(files: list[tuple[str, bytes, int]], ca_bundle: bytes) -> bytes:
    """A reproducible tar of the build context plus the CA bundle for build stages."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel, content, mode in files + [(CA_PATH, ca_bundle, 0o644)]:
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def ca_bundle() -> bytes:
    """Extra CA certificates for build stages: ORCHESTRATE_BUILD_CA, else the host's bundle.

    Machines behind a TLS-intercepting proxy trust its CA through this bundle; it is copied
    into build stages only, never into a final image.
    """
    for variable in ("ORCHESTRATE_BUILD_CA", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value).read_bytes()
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def default_base(dockerfile: str) -> str | None:
    match = BASE_ARG.search(dockerfile)
    return match.group(1) if match else None


def available() -> list[str]:
    return sorted(p.name for p in IMAGES_DIR.iterdir() if (p / "Dockerfile").is_file())


def ensure(docker: Docker, name: str, logs_dir: Path, progress: Callable[[str], None] = print,
           buildargs: dict | None = None) -> Built:
    """Build ``images/<name>`` unless an image with the same content tag exists; return it."""
    folder = IMAGES_DIR / name
    if not folder.is_dir():
        raise UsageError(f"no image folder images/{name}; available: {', '.join(available())}")
    files = context_files(folder)
    dockerfile = dict((rel, content) for rel, content, _ in files)["Dockerfile"].decode()
    base = default_base(dockerfile)
    args = dict(buildargs or {})
    base_id = ""
    if base and "BASE_IMAGE" not in args:
        base, base_id = baseimage.resolve(docker, base, progress)
        args["BASE_IMAGE"] = base
    elif "BASE_IMAGE" in args:
        base = args["BASE_IMAGE"]
        base_id = docker.image_id(base) or ""
    tag = f"{REPOSITORY}/{name}:{content_hash(files, {**args, 'base_id': base_id})}"
    existing = docker.image_id(tag)
    if existing:
        return Built(name, tag, existing, base or "", base_id, docker.image_labels(tag), None, False)
    log_path = logs_dir / f"build-{name}-{tag.rsplit(':', 1)[1]}.log"
    progress(f"building image {tag} from images/{name} (log: {log_path})")
    # Show Dockerfile steps and compiler progress ("[ 42%] Building ...") while the build runs.
    steps = re.compile(r"^(Step \d+/\d+|\[\s*\d+%\])")
    image_id = docker.build(context_tar(files, ca_bundle()), tag, args,
                            {"orchestrate.image": name, "orchestrate.context": tag.rsplit(":", 1)[1],
                             "orchestrate.base": base or "", "orchestrate.base_id": base_id},
                            log_path, lambda line: progress(f"  {name}: {line}") if steps.match(line) else None)
    if not image_id:
        raise ImageBuildError(tag, "the build ended without an image", log_path=str(log_path))
    return Built(name, tag, image_id, base or "", base_id, docker.image_labels(tag), str(log_path), True)
