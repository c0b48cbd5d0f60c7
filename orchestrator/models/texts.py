"""The catalogue of evaluation texts for perplexity workloads (catalogue/texts.yaml): what each text is, which
pinned Debian packages make it, and where the store keeps it and its token ids (tokenize.py makes them)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import CatalogueError, ModelError
from orchestrator.models import catalogue

if TYPE_CHECKING:  # `validate` reads the catalogue only: the Docker and download side is imported where used
    pass


TEXTS = Path(__file__).resolve().parents[2] / "catalogue" / "texts.yaml"


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
