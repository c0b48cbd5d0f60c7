"""Build stage only: smoke-test the venv and write what the image contains to build.json.

Usage: record_build.py OUT.json --requirements FILE --expect-onnxruntime VERSION

Environment read: BASE_IMAGE (the Dockerfile's build arg). Fails the build when the
installed onnxruntime differs from --expect-onnxruntime (keeps the image LABEL honest) or
when the CPU execution provider is missing. The runner adds this file to engine.build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path


def parse_pins(text: str) -> dict[str, list[str]]:
    """name==version -> the sha256 hashes pip accepted for it (from requirements.txt)."""
    pins: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash=sha256:"):
            if current is not None:
                pins[current].append(line.split(":", 1)[1])
        else:
            current = line
            pins[current] = []
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--requirements", type=Path, required=True)
    parser.add_argument("--expect-onnxruntime", required=True)
    args = parser.parse_args()

    import numpy
    import onnxruntime
    import tokenizers

    if onnxruntime.__version__ != args.expect_onnxruntime:
        raise SystemExit(f"expected onnxruntime {args.expect_onnxruntime}, installed {onnxruntime.__version__}")
    providers = onnxruntime.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        raise SystemExit(f"CPUExecutionProvider missing: {providers}")
    build_info = onnxruntime.get_build_info() if hasattr(onnxruntime, "get_build_info") else None

    requirements = args.requirements.read_bytes()
    info = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "base_image": os.environ.get("BASE_IMAGE", ""),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_build_info": build_info,
        "onnxruntime_device": onnxruntime.get_device(),
        "execution_providers_available": providers,
        "numpy": numpy.__version__,
        "tokenizers": tokenizers.__version__,
        "packages": dict(sorted((d.metadata["Name"].lower(), d.version) for d in metadata.distributions())),
        "source": "PyPI wheels, pip install --no-deps --require-hashes",
        "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
        "pins": parse_pins(requirements.decode()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: info[k] for k in ("python", "onnxruntime", "execution_providers_available",
                                           "numpy", "tokenizers")}))


if __name__ == "__main__":
    main()
