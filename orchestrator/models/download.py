"""Fetch a model file by URL with retries, resume and a hash check; nothing half-written is kept."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import requests
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from orchestrator.errors import ModelError

CHUNK = 1 << 16  # small enough that a dropped connection keeps most of what arrived


def ca_bundle() -> str | bool:
    """What ``requests`` verifies TLS against: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (requests reads
    those itself), else SSL_CERT_FILE (the host's bundle, which trusts a TLS-intercepting proxy),
    else certifi's."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    return True


class _Transient(Exception):
    """A failure worth another try (connection dropped, server error)."""


def fetch(url: str, sha256: str, size: int, target: Path, progress: Callable[[str], None] = print,
          attempts: int = 5) -> None:
    """Download ``url`` to ``target``; resume a partial file; check size and sha256 before it lands.

    The bytes go to ``<target>.part`` first; a wrong size or hash deletes it and raises, so
    the store never holds a file that failed its check.
    """
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)

    @retry(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(attempts),
           wait=wait_exponential(multiplier=0.5, max=10), reraise=True)
    def attempt() -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with requests.get(url, headers=headers, stream=True, timeout=60, verify=ca_bundle()) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Transient(f"HTTP {response.status_code}")
                if response.status_code not in (200, 206):
                    raise ModelError(f"downloading {url} failed: HTTP {response.status_code}")
                mode = "ab" if response.status_code == 206 else "wb"  # 200: the server ignored Range
                with part.open(mode) as handle:
                    for block in response.iter_content(CHUNK):
                        handle.write(block)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Transient(str(exc)) from None
        got = part.stat().st_size
        if got < size:
            raise _Transient(f"got {got} of {size} bytes")

    progress(f"downloading {url} ({size / 2**20:.1f} MiB)")
    try:
        attempt()
    except _Transient as exc:
        raise ModelError(f"downloading {url} failed after {attempts} attempts: {exc}; run the command again "
                         f"to resume from {part.stat().st_size if part.exists() else 0} bytes") from None
    actual_size = part.stat().st_size
    with part.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    if actual_size != size or digest.hexdigest() != sha256:
        part.unlink()
        raise ModelError(f"{url}: expected {size} bytes with sha256 {sha256}, got {actual_size} bytes with sha256 "
                         f"{digest.hexdigest()}; nothing was kept. Check the catalogue entry's sha256 and size")
    os.replace(part, target)
