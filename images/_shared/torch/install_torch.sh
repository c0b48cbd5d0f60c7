#!/bin/sh
# Build stage only: install torch into /opt/venv without its declared dependencies.
#
# TORCH_INDEX_URL unset or PyPI: requirements-torch.txt (hash-locked torch plus the CUDA
# libraries `import torch` links against). Any other index (e.g. PyTorch's CPU-only
# index): torch==TORCH_VERSION from there, checked against TORCH_SHA256 when given.
# torch's pure-Python dependencies come from requirements.txt either way. Afterwards
# prune_cuda.py deletes the CUDA libraries a CPU-only import never loads.
set -eu

pypi=https://pypi.org/simple
index=${TORCH_INDEX_URL:-$pypi}
pip="/opt/venv/bin/pip install --no-cache-dir --no-deps"

locked=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' /build/requirements-torch.txt)
if [ "$locked" != "$TORCH_VERSION" ]; then
    echo "TORCH_VERSION=$TORCH_VERSION but requirements-torch.txt pins torch==$locked" >&2
    exit 1
fi

case "${index%/}" in
    "$pypi" | https://pypi.python.org/simple)
        $pip --require-hashes -r /build/requirements-torch.txt
        ;;
    *)
        if [ -n "${TORCH_SHA256:-}" ]; then
            echo "torch==$TORCH_VERSION --hash=sha256:$TORCH_SHA256" > /tmp/torch-req.txt
            $pip --require-hashes --index-url "$index" -r /tmp/torch-req.txt
        else
            echo "warning: torch from $index is not hash-checked (set TORCH_SHA256)" >&2
            $pip --index-url "$index" "torch==$TORCH_VERSION"
        fi
        ;;
esac

site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
/opt/venv/bin/python /build/prune_cuda.py "$site"
