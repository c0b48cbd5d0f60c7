"""Build stage only: delete CUDA libraries that a CPU-only `import torch` never loads.

Usage: prune_cuda.py SITE_PACKAGES

PyPI's torch links its shared objects against CUDA libraries, so those must exist for the
import to succeed; the rest of each nvidia-* wheel (cuDNN's engine libraries, NVSHMEM
transports, profiler libraries, static archives) is only dlopen'd by GPU work. Keeps the
files `ldd` resolves for torch's extension module and libtorch_global_deps.so (plus
ALSO_KEEP), deletes every other file under nvidia/*/lib, and prints what it freed. A
no-op when torch is a CPU build (no nvidia/ folder).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Reached without a GPU: torch.backends.cudnn.version() makes the cuDNN shim dlopen its
# graph library, and the process aborts if it is missing.
ALSO_KEEP = {"libcudnn_graph.so.9"}


def needed(lib: Path) -> set[Path]:
    """Resolved paths of everything the dynamic loader maps for lib (transitively)."""
    output = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, check=True).stdout
    paths = set()
    for line in output.splitlines():
        if "not found" in line:
            raise SystemExit(f"{lib}: unresolved dependency: {line.strip()}")
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target:
                paths.add(Path(target).resolve())
    return paths


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    site = Path(sys.argv[1])
    nvidia = site / "nvidia"
    if not nvidia.is_dir():
        print("no nvidia/ libraries: nothing to prune")
        return
    roots = sorted((site / "torch").glob("_C.*.so")) + [site / "torch" / "lib" / "libtorch_global_deps.so"]
    keep = set().union(*(needed(root) for root in roots))
    freed = 0
    for path in sorted(nvidia.glob("*/lib/*")):
        if path.is_file() and path.resolve() not in keep and path.name not in ALSO_KEEP:
            freed += path.stat().st_size
            print(f"prune {path.relative_to(site)}")
            path.unlink()
    kept = sorted(p.name for p in keep if nvidia in p.parents)
    print(f"kept {len(kept)} CUDA libraries torch links against: {', '.join(kept)}")
    print(f"freed {freed / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
