"""The fixed interface every ENGINE adapter fills in."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # Engine options a MATRIX may set, with what each means (shown by `orchestrate engines`).
    options: dict[str, str] = field(default_factory=dict)
