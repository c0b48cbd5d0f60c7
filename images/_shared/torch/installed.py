"""Build stage only: the packages installed in the venv, checked against NAME=VERSION pins.

Imported by the record scripts of the PyTorch images (copied beside them into /build/).
A mismatch fails the build, which keeps the image LABELs honest; a local version suffix
such as torch's "+cpu" is ignored in the comparison.
"""

from __future__ import annotations

from importlib import metadata


def installed(expect: list[str]) -> dict[str, str]:
    """name -> version of every installed distribution (sorted); SystemExit when a pin differs."""
    packages = {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()}
    for item in expect:
        name, want = item.split("=", 1)
        got = packages.get(name.lower())
        if got is None or got.split("+")[0] != want:
            raise SystemExit(f"expected {name}=={want}, installed {got}")
    return dict(sorted(packages.items()))
