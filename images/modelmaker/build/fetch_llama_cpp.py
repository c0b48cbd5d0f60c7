"""Build stage only: fetch the llama-cpp-python sdist, verify its sha256, unpack what we need.

Usage: fetch_llama_cpp.py URL SHA256 DEST

From the sdist's vendor/llama.cpp/ it keeps convert_hf_to_gguf.py, the conversion/
package it imports, gguf-py/ and the vocab GGUFs the SPEC tokenizers are rebuilt from
(llama-spm, starcoder) with their test vectors, under DEST with the same relative paths.
TLS trusts SSL_CERT_FILE when set (extra CAs).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import PurePosixPath, Path

VENDOR = "vendor/llama.cpp/"
KEEP_FILES = {
    "convert_hf_to_gguf.py",
    "LICENSE",
    "requirements/requirements-convert_hf_to_gguf.txt",
    "requirements/requirements-convert_legacy_llama.txt",
    "models/ggml-vocab-llama-spm.gguf",
    "models/ggml-vocab-llama-spm.gguf.inp",
    "models/ggml-vocab-llama-spm.gguf.out",
    "models/ggml-vocab-starcoder.gguf",
    "models/ggml-vocab-starcoder.gguf.inp",
    "models/ggml-vocab-starcoder.gguf.out",
}
KEEP_DIRS = ("conversion/", "gguf-py/")


def wanted(relative: str) -> bool:
    return relative in KEEP_FILES or relative.startswith(KEEP_DIRS)


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    url, sha256, dest = sys.argv[1], sys.argv[2].lower(), Path(sys.argv[3])
    with tempfile.TemporaryFile() as archive:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=300) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                archive.write(block)
        if digest.hexdigest() != sha256:
            raise SystemExit(f"sha256 mismatch for {url}: got {digest.hexdigest()}, expected {sha256}")
        print(f"verified {url} sha256 {sha256}")
        archive.seek(0)
        kept = 0
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                relative = "/".join(parts[1:])  # drop the llama_cpp_python-X.Y.Z/ prefix
                if not member.isfile() or not relative.startswith(VENDOR):
                    continue
                relative = relative[len(VENDOR):]
                if ".." in PurePosixPath(relative).parts or not wanted(relative):
                    continue
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
                kept += 1
    missing = [name for name in KEEP_FILES if not (dest / name).is_file()]
    missing += [name for name in KEEP_DIRS if not (dest / name).is_dir()]
    if missing:
        raise SystemExit(f"sdist lacks {missing}")
    print(f"unpacked {kept} files into {dest}")


if __name__ == "__main__":
    main()
