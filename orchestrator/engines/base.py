"""The fixed interface every ENGINE adapter fills in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engines.options import declare


def runs_everything(entry: Any, fmt: str, options: dict) -> str | None:
    """The default ``supports``: every model in every format the ENGINE reads."""
    return None


@dataclass(frozen=True)
class Engine:
    """The fixed interface of an ENGINE adapter.

    Required: ``name``, ``image_dir`` (folder under images/) and ``formats`` (model
    formats it reads). The rest have defaults.
    """

    name: str
    image_dir: str
    formats: frozenset[str]
    description: str = ""
    # A test double drives pipeline tests only; reports label it as such.
    test_only: bool = False
    # The options a MATRIX may set, as a JSON Schema made by options.declare(): checked by
    # `orchestrate validate`, printed by `orchestrate engines`, shipped into the IMAGE.
    options: dict = field(default_factory=lambda: declare({}))
    # Another program in the same IMAGE (argv; empty: the image's ENTRYPOINT), for an ENGINE
    # that shares its image folder with another (llama-server beside llama.cpp).
    entrypoint: tuple[str, ...] = ()
    # Size of the CELL's /tmp tmpfs (charged to its memory limit): an engine that copies the
    # model into a store of its own (Ollama) needs more than the default.
    tmpfs_size: str = "256m"
    # Workload kinds its runner runs (docs/contract.md): the PLAN leaves out the others.
    workloads: frozenset[str] = frozenset({"generate"})
    # Whether it can run a model (its catalogue.Entry) in a format it reads, with a CELL's options:
    # None when it can, else the reason. `orchestrate validate` refuses a MATRIX with a CELL it
    # cannot run, naming the reason, instead of letting that CELL run into garbage.
    supports: Callable[[Any, str, dict], str | None] = runs_everything
    # Where the ENGINE's figure is known to sit below the engine's own faster path (docs/fidelity.md):
    # what that path is. The SUMMARY says it wherever the ENGINE appears; empty where it is not known to.
    below_best: str = ""
