"""Build stage only: smoke-test the venv and write what is installed to build.json.

Usage: record_build.py OUT.json [--expect NAME=VERSION ...]

Environment read: BASE_IMAGE, TORCH_INDEX_URL (the Dockerfile's build args). --expect
fails the build when an installed version differs from a build arg, which keeps the
image LABELs honest; a local version suffix such as torch's "+cpu" is ignored there.
The runner copies this file into result.json's engine.build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from installed import installed  # _shared/torch/installed.py, copied beside this file


def smoke_test() -> dict:
    """Import the engine's packages and run a tiny seeded CPU matmul through torch."""
    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache  # noqa: F401

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 16, generator=generator)
    if not torch.isfinite(x @ x).all():
        raise SystemExit("torch smoke test failed")
    return {
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--expect", action="append", default=[], metavar="NAME=VERSION")
    args = parser.parse_args()

    packages = installed(args.expect)

    info = {
        "python": platform.python_version(),
        "base_image": os.environ.get("BASE_IMAGE", ""),
        "torch_index_url": os.environ.get("TORCH_INDEX_URL", ""),
        "torch_install": "PyPI CUDA wheel, --no-deps, pruned to the CUDA libraries `import torch` links against"
                         if os.environ.get("TORCH_INDEX_URL", "").rstrip("/") in ("", "https://pypi.org/simple",
                                                                                    "https://pypi.python.org/simple")
                         else "torch==TORCH_VERSION from TORCH_INDEX_URL, --no-deps",
        "imported": smoke_test(),
        "packages": dict(sorted(packages.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info["imported"]))


if __name__ == "__main__":
    main()
