"""Architectures: the host's, an IMAGE's, and whether a CELL ran under emulation (pure).

Docker names architectures as Go does (amd64, arm64), the kernel as uname does (x86_64,
aarch64). An IMAGE built for another architecture than the host's runs under emulation
(qemu-user through binfmt_misc): it computes the same tokens, but its speed says nothing about
that architecture's hardware, so such a CELL is marked emulated and kept out of speed
comparisons and merges with native RUNs unless asked for.
"""

from __future__ import annotations

from orchestrator.errors import UsageError

ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
PLATFORMS = ("linux/amd64", "linux/arm64")


def architecture(name: str | None) -> str | None:
    """Docker's name of an architecture ('x86_64' -> 'amd64'); None when unknown."""
    return ARCHITECTURES.get((name or "").lower())


def platform_of(text: str) -> str:
    """A platform the IMAGEs can be built for, as given ('linux/arm64'); UsageError otherwise."""
    if text not in PLATFORMS:
        raise UsageError(f"platform {text!r} is not one the IMAGEs are built for ({', '.join(PLATFORMS)})")
    return text


def emulation(image_architecture: str | None, host_architecture: str | None) -> dict:
    """Whether a CELL ran emulated: its IMAGE's architecture against the host's (None when either is unknown)."""
    image, host = architecture(image_architecture), architecture(host_architecture)
    emulated = None if image is None or host is None else image != host
    return {"emulated": emulated, "image_architecture": image, "host_architecture": host,
            "how": "the IMAGE's architecture (Docker's image inspect) against the host's (Docker's info)"}
