"""Evaluation texts for perplexity workloads (catalogue/texts.yaml).

A text is made on each machine, offline but for Debian's archive: its pinned packages are
downloaded and checked by sha256, decoded in the pinned modelmaker image, normalised, and
the result checked against the catalogue's sha256; a wrong hash leaves nothing in the store.
It is then tokenized once per model by that model's Hugging Face tokenizer, so every ENGINE
scores the same ids (the job carries the ids file and its sha256).

Layout: ``<store>/texts/<text-id>-<sha256[:12]>/text.txt`` and
``.../ids/<model folder name>.ids.json``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from orchestrator import catalogue
from orchestrator.errors import CatalogueError, ModelError

if TYPE_CHECKING:  # `validate` reads the catalogue only: the Docker and download side is imported where used
    from orchestrator.dockerapi import Docker

TEXTS = Path(__file__).resolve().parent.parent / "catalogue" / "texts.yaml"
DEBIAN_MIRROR = "http://deb.debian.org/debian"  # ORCHESTRATE_DEBIAN_MIRROR overrides it
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str
    file: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Text:
    """One evaluation text of the catalogue."""

    id: str
    title: str
    licence: str
    packages: tuple[Package, ...]
    verses: str
    normalisation: str
    sha256: str
    size: int

    def packages_for(self, arch: str) -> tuple[Package, ...]:
        """The packages a machine of ``arch`` needs: the architecture-independent ones and its own."""
        arches = {p.arch for p in self.packages} - {"all"}
        if arches and arch not in arches:
            raise ModelError(f"evaluation text {self.id}: no package for this machine's architecture {arch} "
                             f"(the catalogue has {', '.join(sorted(arches))})")
        return tuple(p for p in self.packages if p.arch in ("all", arch))


def host_arch() -> str:
    """This machine's Debian architecture name (amd64, arm64), else what the kernel calls it."""
    return ARCH.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class EvalIds:
    """A text's token ids for one model: the file the job points at, and its sha256."""

    text: str
    path: Path
    sha256: str
    count: int


@cache
def load(path: Path = TEXTS) -> dict[str, Text]:
    """Every evaluation text by id, validated against schemas/texts.schema.json."""
    out = {}
    for item in catalogue.read_items(path, "the texts catalogue", "texts", "texts", "text id"):
        out[item["id"]] = Text(item["id"], item["title"], item["licence"],
                               tuple(Package(**p) for p in item["packages"]), item["verses"],
                               item["normalisation"], item["sha256"], item["size"])
    return out


def get(text_id: str) -> Text:
    known = load()
    if text_id not in known:
        raise CatalogueError(f"unknown evaluation text {text_id!r}; catalogue/texts.yaml has: {', '.join(sorted(known))}")
    return known[text_id]


def folder(text: Text, root: Path) -> Path:
    return root / "texts" / f"{text.id}-{text.sha256[:12]}"


def prepare(docker: Docker, text: Text, root: Path, logs_dir: Path,
            progress: Callable[[str], None] = print) -> Path:
    """The text's file in the store, made (and checked) when it is not there yet."""
    from orchestrator import download, images, locks
    from orchestrator.dockerapi import Mount
    from orchestrator.models import run_tool, sha256_of

    home = folder(text, root)
    target = home / "text.txt"
    if target.is_file():
        return target
    home.mkdir(parents=True, exist_ok=True)
    lock = locks.hold_model(home, f"evaluation text {text.id}", progress)
    try:
        if target.is_file():
            return target
        work = home / ".work-text"
        shutil.rmtree(work, ignore_errors=True)
        debs, out = work / "debs", work / "out"
        debs.mkdir(parents=True)
        out.mkdir()
        os.chmod(out, 0o777)  # the tool runs as an unprivileged user
        mirror = os.environ.get("ORCHESTRATE_DEBIAN_MIRROR", DEBIAN_MIRROR).rstrip("/")
        names = []
        for package in text.packages_for(host_arch()):
            name = Path(package.file).name
            progress(f"downloading {name} from {mirror}")
            download.fetch(f"{mirror}/{package.file}", package.sha256, package.size, debs / name, progress)
            os.chmod(debs / name, 0o644)
            names.append(name)
        maker = images.ensure(docker, "modelmaker", logs_dir, progress)
        command = ["python3", "/opt/modelmaker/make_text.py", "--verses", text.verses, "--out", "/out/text.txt"]
        for name in names:
            command += ["--deb", f"/debs/{name}"]
        run_tool(docker, maker, command, (Mount(str(debs), "/debs"), Mount(str(out), "/out", read_only=False)),
             f"making evaluation text {text.id}", logs_dir / f"text-{text.id}.log", progress)
        made = out / "text.txt"
        digest = sha256_of(made) if made.is_file() else None
        if digest != text.sha256:
            raise ModelError(f"evaluation text {text.id}: the text made has sha256 {digest}, the catalogue pins "
                             f"{text.sha256}; nothing was kept (check the packages and the normalisation)")
        _own(made)
        os.replace(made, target)
        return target
    finally:
        shutil.rmtree(home / ".work-text", ignore_errors=True)
        lock.release()


def ids_for(docker: Docker, text: Text, model_folder: Path, root: Path, logs_dir: Path,
            progress: Callable[[str], None] = print) -> EvalIds:
    """The text tokenized by the model's Hugging Face tokenizer (made once, then reused)."""
    from orchestrator import images
    from orchestrator.dockerapi import Mount
    from orchestrator.models import run_tool, sha256_of, tool_report

    home = folder(text, root)
    target = home / "ids" / f"{model_folder.name}.ids.json"
    if not target.is_file():
        source = prepare(docker, text, root, logs_dir, progress)
        if not (model_folder / "hf" / "tokenizer.json").is_file():
            raise ModelError(f"perplexity on {text.id} needs the model's Hugging Face tokenizer "
                             f"({model_folder / 'hf' / 'tokenizer.json'}); prepare the model's safetensors format")
        work = home / f".work-ids-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        os.chmod(work, 0o777)
        try:
            maker = images.ensure(docker, "modelmaker", logs_dir, progress)
            progress(f"tokenizing {text.id} for {model_folder.name}")
            run_tool(docker, maker, ["python3", "/opt/modelmaker/tokenize_text.py", "--tokenizer",
                                 "/models/hf/tokenizer.json", "--text", "/text/text.txt", "--id", text.id,
                                 "--out", "/out/ids.json"],
                 (Mount(str(model_folder), "/models"), Mount(str(source.parent), "/text"),
                  Mount(str(work), "/out", read_only=False)),
                 f"tokenizing {text.id}", logs_dir / f"tokenize-{text.id}-{model_folder.name}.log", progress)
            target.parent.mkdir(parents=True, exist_ok=True)
            _own(work / "ids.json")
            os.replace(work / "ids.json", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    ids = tool_report(target).get("ids")
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        raise ModelError(f"{target} holds no list of token ids")
    return EvalIds(text.id, target, sha256_of(target), len(ids))


def _own(path: Path) -> None:
    """A file made by the unprivileged tool user: readable by all, owned like the rest of the store."""
    os.chmod(path, 0o644)
    if os.getuid() == 0:
        os.chown(path, 0, 0)
