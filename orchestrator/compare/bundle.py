"""A RUN as one file a colleague can send: records, MATRIX, image contexts, model manifests, host.

``write`` packs a RUN folder into a tar.gz; ``extract`` unpacks one safely (no links, no
paths outside the target) and ``read_manifest`` reads its bundle.json. Layout:

    bundle.json                 what is inside and where it came from (BUNDLE_VERSION)
    matrix.yaml                 the MATRIX exactly as the RUN was given it
    host.json                   the RUN's host snapshot
    run/run.json, run/cells/<cell-id>/record.json
    models/<model-folder>/manifest.json     (and the model files with --with-models)
    images/<engine>.tar         `docker save` of each ENGINE's IMAGE (with --with-images)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import __version__
from orchestrator.engines import ENGINES
from orchestrator.errors import OrchestratorError, ResultError
from orchestrator.files import archive, beneath, digest, names, reading
from orchestrator.host import sysinfo
from orchestrator.host.dockerapi import Docker
from orchestrator.images import imagebuild
from orchestrator.models import catalogue, modelstore
from orchestrator.results import rundata
from orchestrator.results.recordfiles import read_run

BUNDLE_VERSION = 1
SUFFIX = ".orchestrate.tar.gz"


class BundleError(OrchestratorError):
    """A bundle cannot be written or read, or is refused; says which file and why."""

    exit_code = 5


def context_listing(image_dir: str) -> dict:
    """This checkout's build context of images/<image_dir>: its tag and the sha256 of every file."""
    files = imagebuild.context_files(imagebuild.IMAGES_DIR / image_dir)
    return {"tag": imagebuild.tag_for(image_dir),
            "files": {rel: f"{mode:o}:{hashlib.sha256(content).hexdigest()}" for rel, content, mode in files}}


def manifest(run: rundata.Run, run_doc: dict, contexts: dict[str, dict], model_dirs: dict[str, Path | None],
             recipes: dict[str, dict | None], commit: tuple[str | None, bool | None], with_images: bool,
             with_models: bool) -> dict:
    """bundle.json (pure): the RUN's images and models beside this checkout's context hashes."""
    image_rows = {}
    for engine, image in run.info.images.items():
        context = contexts[engine]
        image_rows[engine] = {
            "image_dir": ENGINES[engine].image_dir if engine in ENGINES else engine, "tag": image.tag,
            "id": image.id, "base": image.base, "base_id": image.base_id,
            "context": context, "context_matches_run": context["tag"] == image.tag,
            "archive": f"images/{engine}.tar" if with_images else None}
    model_rows = {}
    for key, sha in run.info.models.items():
        folder = model_dirs.get(key)
        model_rows[key] = {"sha256": sha, "folder": folder.name if folder else None, "recipe": recipes.get(key),
                           "path": run_doc["models"][key].get("path"), "included": with_models and folder is not None}
    return {"bundle_version": BUNDLE_VERSION, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": run.info.run_id, "run_status": run.info.status,
            "orchestrator": {"version": __version__, "git_commit": commit[0], "git_dirty": commit[1]},
            "images": image_rows, "models": model_rows}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _json_bytes(document) -> bytes:
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()


def recipe(key: str) -> dict | None:
    """This checkout's catalogue recipe of a '<model>/<format>' (everything that decides the bytes), if known."""
    try:
        entry = catalogue.get(key.split("/", 1)[0])
    except OrchestratorError:
        return None
    return {"recipe_hash": entry.recipe_hash(), "spec": entry.spec()}


def model_folder(key: str, recorded_path: str | None) -> Path | None:
    """The store folder of a '<model>/<format>' the RUN used: from this checkout's catalogue, else the RUN's path."""
    model_id = key.split("/", 1)[0]
    try:
        folder = modelstore.folder(catalogue.get(model_id))
    except OrchestratorError:
        folder = None
    if folder is not None and (folder / "manifest.json").is_file():
        return folder
    store = modelstore.store_root().resolve()
    for parent in Path(recorded_path or "/").parents:  # a path from run.json: only a folder of the store counts
        if parent.parent == store and (parent / "manifest.json").is_file() and not parent.is_symlink():
            return parent
    return None


def write(run_dir: Path, out: Path | None = None, with_images: bool = False, with_models: bool = False,
          progress: Callable[[str], None] = print) -> Path:
    """Pack a RUN folder into one tar.gz; return its path."""
    run_dir = Path(run_dir)
    run_doc, records = read_run(run_dir)
    run = rundata.Run.from_documents(run_doc, records, str(run_dir))
    out = Path(out) if out else Path(f"{run.info.run_id}{SUFFIX}")
    if out.exists():
        raise BundleError(f"{out} exists; a bundle is never overwritten (name another --out)")

    contexts = {engine: context_listing(ENGINES[engine].image_dir if engine in ENGINES else engine)
                for engine in run.info.images}
    for engine, context in contexts.items():
        if context["tag"] != run.info.images[engine].tag:
            progress(f"warning: images/{engine} of this checkout hashes to {context['tag']}, the RUN used "
                     f"{run.info.images[engine].tag}: the checkout changed since the RUN (or the RUN predates "
                     "tags by declared base); `reproduce` will refuse it without --force")
    model_dirs = {key: model_folder(key, run_doc["models"][key].get("path")) for key in run.info.models}
    missing = [key for key, folder in model_dirs.items() if folder is None]
    if missing and with_models:
        raise BundleError(f"--with-models: the model store has no folder for {', '.join(missing)}")
    document = manifest(run, run_doc, contexts, model_dirs, {key: recipe(key) for key in run.info.models},
                        sysinfo.git_commit(), with_images, with_models)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            _add_bytes(tar, "bundle.json", _json_bytes(document))
            _add_bytes(tar, "matrix.yaml", run.info.matrix_text.encode())
            _add_bytes(tar, "host.json", _json_bytes(run_doc["host"]))
            _add_bytes(tar, "run/run.json", _json_bytes(run_doc))
            for record in records:
                _add_bytes(tar, f"run/cells/{record['cell_id']}/record.json", _json_bytes(record))
            for folder in dict.fromkeys(f for f in model_dirs.values() if f is not None):
                tar.add(folder / "manifest.json", f"models/{folder.name}/manifest.json")
                if with_models:
                    progress(f"adding model files of {folder.name}")
                    for rel in digest.tree_files(folder, folder):  # a link or special file is refused
                        if rel != "manifest.json" and not any(part.startswith(".") for part in rel.split("/")):
                            tar.add(folder / rel, f"models/{folder.name}/{rel}")
            if with_images:
                _add_images(tar, run, out.parent, progress)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out


def _add_images(tar: tarfile.TarFile, run: rundata.Run, scratch: Path, progress: Callable[[str], None]) -> None:
    docker = Docker()
    for engine, image in run.info.images.items():
        if docker.image_id(image.tag) is None:
            raise BundleError(f"--with-images: image {image.tag} of {engine} is not on this machine")
        progress(f"saving image {image.tag}")
        archive = scratch / f".{engine}.{os.getpid()}.tar"
        try:
            docker.save(image.tag, archive)
            tar.add(archive, f"images/{engine}.tar")
        finally:
            archive.unlink(missing_ok=True)


# What a bundle may hold when it is unpacked (files/archive.py checks each before and while unpacking).
# Records: a RUN has at most bounds.MAX_CELLS CELLs, each record at most results.MAX_RECORD_BYTES.
MAX_MEMBERS = 20_000  # records of 10,000 CELLs, model manifests and files, image archives
MAX_DOCUMENT_BYTES = 64 * 2**20  # bundle.json, matrix.yaml, host.json, run.json, one record, one manifest
RECORDS_CAPS = archive.Caps(members=MAX_MEMBERS, member_bytes=MAX_DOCUMENT_BYTES, total_bytes=2 * 2**30,
                            stream_bytes=4 * 2**30)
# With --with-images / --with-models: an IMAGE archive (`docker save`) of the PyTorch images is about 3.6 GB.
FULL_CAPS = archive.Caps(members=MAX_MEMBERS, member_bytes=64 * 2**30, total_bytes=256 * 2**30,
                         stream_bytes=256 * 2**30)
MAX_BUNDLE_JSON_BYTES = 16 * 2**20


class _Layout:
    """The members a bundle may have, in the order ``write`` puts them: documents, then models, then images.

    ``records_only`` stops at the first model or image (``compare`` needs nothing after them).
    """

    def __init__(self, records_only: bool):
        self.records_only = records_only
        self.payload = False

    def __call__(self, name: str) -> str:
        parts = name.split("/")
        top = parts[0]
        if top in ("models", "images"):
            if not (top == "images" and len(parts) == 2 and name.endswith(".tar")) and not \
                    (top == "models" and len(parts) >= 2):
                raise BundleError(f"the bundle holds {names.shown(name)}, which is not where a bundle keeps "
                                  "models or images")
            self.payload = True
            return "stop" if self.records_only else "keep"
        if self.payload:
            raise BundleError(f"the bundle holds {names.shown(name)} after its models or images; a bundle keeps "
                              "bundle.json, matrix.yaml, host.json and run/ first")
        if name in ("bundle.json", "matrix.yaml", "host.json", "run", "run/run.json", "run/cells") or (
                len(parts) in (3, 4) and parts[:2] == ["run", "cells"] and parts[3:] in ([], ["record.json"])):
            return "keep"
        raise BundleError(f"the bundle holds {names.shown(name)}, which is no part of a bundle")


def extract(bundle: Path, target: Path, records_only: bool = False) -> Path:
    """Unpack a bundle into the new folder ``target`` within the caps above (regular files and folders only,
    nothing outside it, the layout of ``write``); with ``records_only`` the models and images are not unpacked."""
    bundle = Path(bundle)
    try:
        archive.unpack(bundle, target, RECORDS_CAPS if records_only else FULL_CAPS, _Layout(records_only))
    except archive.ArchiveRefused as exc:
        raise BundleError(f"{bundle} refused: {exc.detail}") from None
    except BundleError as exc:
        raise BundleError(f"{bundle} refused: {exc}") from None
    if not (target / "bundle.json").is_file() or not (target / "run" / "run.json").is_file():
        beneath.remove(target)
        raise BundleError(f"{bundle} is not a bundle: no bundle.json or run/run.json in it")
    return target


def read_manifest(folder: Path) -> dict:
    """bundle.json of an extracted bundle: bounded, strict and schema-checked (schemas/bundle.schema.json);
    refuses a newer bundle version and IMAGE folders this checkout does not have."""
    try:
        document = reading.read_json(Path(folder) / "bundle.json", MAX_BUNDLE_JSON_BYTES, "bundle", root=folder)
    except reading.Refused as exc:
        raise BundleError(f"bundle.json cannot be read: {exc.detail}") from None
    if document["bundle_version"] > BUNDLE_VERSION:
        raise BundleError(f"bundle version {document['bundle_version']} is not one this orchestrator reads "
                          f"(up to {BUNDLE_VERSION})")

    known = {p.parent.name for p in imagebuild.IMAGES_DIR.glob("*/Dockerfile")}
    for engine, row in document["images"].items():
        if row["image_dir"] not in known:
            raise BundleError(f"bundle.json: images.{names.shown(engine)} names the IMAGE folder "
                              f"{names.shown(row['image_dir'])}, which this checkout does not have "
                              f"(it has {', '.join(sorted(known))})")
    return document


def open_run(path: Path, scratch: Path) -> rundata.Run:
    """A RUN folder, or a bundle unpacked under ``scratch``, read into a typed Run."""
    path = Path(path)
    if path.is_dir():
        return rundata.load(path)
    if not path.is_file():
        raise ResultError(f"{path} is neither a RUN folder nor a bundle file")
    Path(scratch).mkdir(parents=True, exist_ok=True)
    folder = extract(path, Path(tempfile.mkdtemp(prefix="bundle-", dir=scratch)) / "unpacked",
                     records_only=True)
    read_manifest(folder)
    run = rundata.load(folder / "run")
    return rundata.Run(run.info, run.cells, str(path))
