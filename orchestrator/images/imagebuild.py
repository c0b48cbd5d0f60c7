"""Build each ENGINE's IMAGE from images/<engine>/, tagged by a hash of its build context.

An unchanged folder (same files, same build arguments, same declared base reference) is
not rebuilt; a changed one gets a new tag. On a machine whose Docker engine can pull nothing, the
base image is made locally from Debian's archive (see baseimage.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator import schemas
from orchestrator.engines import ENGINES
from orchestrator.errors import ImageBuildError, UsageError
from orchestrator.host import platforms
from orchestrator.host.dockerapi import Docker
from orchestrator.images import baseimage, prereqs

IMAGES_DIR = Path(__file__).resolve().parents[2] / "images"
# Code several IMAGEs share lives once, in images/_shared/<part>/; a Dockerfile that names
# _shared/<part> gets that folder in its build context (and in its content hash).
SHARED_DIR = IMAGES_DIR / "_shared"
SHARED_REF = re.compile(r"(?<![\w/])_shared/([A-Za-z0-9_.-]+)")
RUNNERKIT = "runnerkit"  # this part also carries the job schema and the ENGINE's options declaration
REPOSITORY = "orchestrate"
CA_PATH = ".build-ca/ca.pem"  # where the build context carries extra CA certificates
# Generated files never belong to a build context: caches of tools run in the folder, build output.
SKIP = {"__pycache__", ".build-ca", "target", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv", ".git", "bin",
        "obj"}
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
    architecture: str | None = None  # Docker's name of what it runs on (amd64, arm64); None when not known


def context_files(folder: Path) -> list[tuple[str, bytes, int]]:
    """The files of a build context as (relative path, content, mode), sorted by path."""
    if not (folder / "Dockerfile").is_file():
        raise UsageError(f"{folder} has no Dockerfile")
    files = _folder_files(folder)
    dockerfile = dict((rel, content) for rel, content, _ in files)["Dockerfile"].decode()
    return sorted(files + shared_files(folder.name, dockerfile))


def _folder_files(folder: Path, prefix: str = "") -> list[tuple[str, bytes, int]]:
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIP for part in rel.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        files.append((prefix + rel.as_posix(), path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644))
    return files


def shared_files(name: str, dockerfile: str) -> list[tuple[str, bytes, int]]:
    """The shared parts the Dockerfile names, as build-context files under _shared/<part>/.

    The runner kit part also gets the contract's job schema (cell.schema.json) and the
    options declaration of the ENGINE built from images/<name> (options.schema.json), so a
    runner checks its job against the same documents as the orchestrator. Where several
    ENGINEs share the folder, each declaration also comes as options.<engine>.schema.json.
    """
    files = []
    for part in sorted(set(SHARED_REF.findall(dockerfile))):
        folder = SHARED_DIR / part
        if not folder.is_dir():
            raise UsageError(f"images/{name}/Dockerfile names _shared/{part}, which does not exist")
        files += _folder_files(folder, f"_shared/{part}/")
        if part == RUNNERKIT:
            declared = [e.options for e in ENGINES.values() if e.image_dir == name]
            options = declared[0] if declared else {"type": "object", "additionalProperties": False}
            files += [(f"_shared/{part}/cell.schema.json", (schemas.SCHEMA_DIR / "cell.schema.json").read_bytes(),
                       0o644),
                      (f"_shared/{part}/options.schema.json",
                       (json.dumps(options, indent=2, sort_keys=True) + "\n").encode(), 0o644)]
            sharing = [e for e in ENGINES.values() if e.image_dir == name]
            if len(sharing) > 1:  # one folder, several ENGINEs (llama.cpp, llama-server): each its own declaration
                files += [(f"_shared/{part}/options.{e.name}.schema.json",
                           (json.dumps(e.options, indent=2, sort_keys=True) + "\n").encode(), 0o644)
                          for e in sharing]
    return sorted(files)


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


def native_build(args: dict) -> bool:
    """Whether build arguments ask for machine code for the building CPU only (llama.cpp, candle)."""
    return args.get("CPU_BUILD") == "native" or args.get("TARGET_CPU") == "native"


def host_cpu_key(cpuinfo: str | None = None) -> str:
    """16 hex digits over this CPU's model name and feature flags (/proc/cpuinfo): what -march=native sees."""
    proc = Path("/proc/cpuinfo")
    text = cpuinfo if cpuinfo is not None else (proc.read_text(encoding="utf-8") if proc.is_file()
                                                else "")
    fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in
                                                             text.split("\n\n")[0].splitlines() if ":" in line)}
    flags = sorted((fields.get("flags") or fields.get("Features") or "").split())  # x86 / arm64
    name = fields.get("model name", "")
    return hashlib.sha256(f"{name}\0{' '.join(flags)}".encode()).hexdigest()[:16]


def tag_args(buildargs: dict, declared_base: str | None, cpu_key: str | None = None) -> dict:
    """What the content tag hashes besides the files: the build arguments, the Dockerfile's declared base
    reference (not the local id of the base used: a pulled and a debootstrapped base give one tag; run.json and
    the image's labels say which was used), and for a native build this CPU's features."""
    args = dict(buildargs)
    if declared_base and "BASE_IMAGE" not in args:
        args["BASE_IMAGE"] = declared_base
    if native_build(args):
        args["cpu_features"] = cpu_key or host_cpu_key()
    return args


def tag_for(name: str, buildargs: dict | None = None) -> str:
    """The tag ``ensure`` gives images/<name> built from this checkout (no Docker needed)."""
    files = context_files(IMAGES_DIR / name)
    dockerfile = dict((rel, content) for rel, content, _ in files)["Dockerfile"].decode()
    return f"{REPOSITORY}/{name}:{content_hash(files, tag_args(dict(buildargs or {}), default_base(dockerfile)))}"


def unavailable(name: str) -> Built:
    """What a RUN records for images/<name> when it cannot be built here: the tag it would have, no image."""
    return Built(name, tag_for(name), "", "", "", {}, None, False)


def default_base(dockerfile: str) -> str | None:
    match = BASE_ARG.search(dockerfile)
    return match.group(1) if match else None


def available() -> list[str]:
    """The IMAGE folders under images/ (every folder with a Dockerfile)."""
    return sorted(p.name for p in IMAGES_DIR.iterdir() if (p / "Dockerfile").is_file())


_BUILDING: dict[str, threading.Lock] = {}  # one lock per image folder: threads that ask for it build it once
_BUILDING_GUARD = threading.Lock()


def ensure(docker: Docker, name: str, logs_dir: Path, progress: Callable[[str], None] = print,
           buildargs: dict | None = None, platform: str | None = None) -> Built:
    """Build ``images/<name>`` unless an image with the same content tag exists; return it.

    ``platform`` (linux/amd64, linux/arm64) builds for another architecture than the host's: the
    build arguments TARGETPLATFORM and TARGETARCH say which (the classic builder sets neither), and
    so the tag differs from the host's. Safe to call from several threads: a second caller for the
    same folder waits for the first one's build and then finds its image.
    """
    with _BUILDING_GUARD:
        lock = _BUILDING.setdefault(name, threading.Lock())
    with lock:
        built = _ensure(docker, name, logs_dir, progress, {**(buildargs or {}), **target_args(docker, platform)})
        return replace(built, architecture=docker.image_architecture(built.tag) if built.id else None)


def target_args(docker: Docker, platform: str | None) -> dict:
    """TARGETPLATFORM and TARGETARCH for a platform other than the host's; nothing for the host's own."""
    if platform is None:
        return {}
    arch = platforms.architecture(platforms.platform_of(platform).split("/")[1])
    if arch == platforms.architecture(docker.info().get("architecture")):
        return {}
    return {"TARGETPLATFORM": platform, "TARGETARCH": arch}


def _ensure(docker: Docker, name: str, logs_dir: Path, progress: Callable[[str], None],
            buildargs: dict | None) -> Built:
    folder = IMAGES_DIR / name
    if not folder.is_dir():
        raise UsageError(f"no image folder images/{name}; available: {', '.join(available())}")
    files = context_files(folder)
    dockerfile = dict((rel, content) for rel, content, _ in files)["Dockerfile"].decode()
    base = default_base(dockerfile)
    args = dict(buildargs or {})
    tag = f"{REPOSITORY}/{name}:{content_hash(files, tag_args(args, base))}"  # no local image id in it
    existing = docker.image_id(tag)
    if existing:
        labels = docker.image_labels(tag)
        return Built(name, tag, existing, labels.get("orchestrate.base", base or ""),
                     labels.get("orchestrate.base_id", ""), labels, None, False)
    # Base images only a registry gives, sources on unreachable hosts: say so in seconds, with the way out.
    args.update(prereqs.check(docker, name, tag, dockerfile, args))
    base_id = ""
    if base and "BASE_IMAGE" not in args:
        base, base_id = baseimage.resolve(docker, base, progress, args.get("TARGETARCH"))
        args["BASE_IMAGE"] = base
    elif "BASE_IMAGE" in args:
        base = args["BASE_IMAGE"]
        base_id = docker.image_id(base) or ""
    # An image built before tags left out the base image's id has this content under its old tag: name it.
    old = docker.image_id(f"{REPOSITORY}/{name}:{content_hash(files, {**args, 'base_id': base_id})}")
    if old and not native_build(args):
        docker.tag(old, tag)
        return Built(name, tag, old, base or "", base_id, docker.image_labels(tag), None, False)
    log_path = logs_dir / f"build-{name}-{tag.rsplit(':', 1)[1]}.log"
    progress(f"building image {tag} from images/{name} (log: {log_path})")
    # Show Dockerfile steps and compiler progress ("[ 42%] Building ...") while the build runs.
    steps = re.compile(r"^(Step \d+/\d+|\[\s*\d+%\])")
    image_id = docker.build(context_tar(files, ca_bundle()), tag, args,
                            {"orchestrate.image": name, "orchestrate.context": tag.rsplit(":", 1)[1],
                             "orchestrate.base": base or "", "orchestrate.base_id": base_id,
                             **({"orchestrate.cpu_features": host_cpu_key()} if native_build(args) else {})},
                            log_path, lambda line: progress(f"  {name}: {line}") if steps.match(line) else None,
                            args.get("TARGETPLATFORM"))
    if not image_id:
        raise ImageBuildError(tag, "the build ended without an image", log_path=str(log_path))
    return Built(name, tag, image_id, base or "", base_id, docker.image_labels(tag), str(log_path), True)
