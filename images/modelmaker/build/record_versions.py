"""Build stage only: smoke-test the venv and write what is installed to versions.json.

Usage: record_versions.py OUT.json --llama-cpp DIR [--expect NAME=VERSION ...]

Environment read: BASE_IMAGE, TORCH_INDEX_URL, LLAMA_CPP_PYTHON_VERSION,
LLAMA_CPP_PYTHON_SHA256 (the Dockerfile's build args). --expect fails the build when an
installed version differs (keeps the image LABELs honest); a local version suffix such
as torch's "+cpu" is ignored in that comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tomllib
from pathlib import Path

from installed import installed  # _shared/torch/installed.py, copied beside this file


def smoke_test() -> dict:
    """Import the heavy packages and run a tiny seeded matmul on the CPU."""
    import numpy
    import sentencepiece  # noqa: F401
    import torch
    import transformers  # noqa: F401

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 8, generator=generator)
    if not torch.isfinite(x @ x).all():
        raise SystemExit("torch smoke test failed")
    # Both touch the CUDA libraries left after prune_cuda.py; a missing one aborts here.
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "cuda_available": torch.cuda.is_available(), "numpy": numpy.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--llama-cpp", type=Path, required=True)
    parser.add_argument("--expect", action="append", default=[], metavar="NAME=VERSION")
    args = parser.parse_args()

    packages = installed(args.expect)

    torch_info = smoke_test()
    gguf_py = tomllib.loads((args.llama_cpp / "gguf-py" / "pyproject.toml").read_text())["project"]
    converter_reqs = (args.llama_cpp / "requirements" / "requirements-convert_legacy_llama.txt").read_text()
    versions = {
        "python": platform.python_version(),
        "base_image": os.environ.get("BASE_IMAGE", ""),
        "packages": dict(sorted(packages.items())),
        "torch": {**torch_info, "index_url": os.environ.get("TORCH_INDEX_URL", "")},
        "llama_cpp": {
            "source": "llama-cpp-python sdist (vendor/llama.cpp)",
            "llama_cpp_python": os.environ.get("LLAMA_CPP_PYTHON_VERSION", ""),
            "sdist_sha256": os.environ.get("LLAMA_CPP_PYTHON_SHA256", ""),
            "gguf_py": gguf_py["version"],
            "converter_transformers_pin": (re.findall(r"^transformers\S*", converter_reqs, re.M) or [""])[0],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(versions["torch"]), json.dumps(versions["llama_cpp"]))


if __name__ == "__main__":
    main()
