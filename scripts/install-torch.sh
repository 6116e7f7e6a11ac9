#!/bin/sh
# Install PyTorch into a virtual environment without surprises:
#  - a torch that is already there (CUDA, ROCm, MPS or CPU build) is kept as it is;
#  - with an NVIDIA GPU (nvidia-smi answers), PyPI's default CUDA build is installed;
#  - otherwise a CPU-only build: TORCH_CPU_SPEC (default torch==2.13.0), taken from the
#    PyTorch CPU index when that index is reachable, else from pip's configured sources.
# Usage: scripts/install-torch.sh PYTHON
set -eu
py=${1:-python3}
if "$py" -c "import torch" 2>/dev/null; then
    echo "install-torch: keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "install-torch: NVIDIA GPU found, installing PyPI's CUDA build of torch"
    exec "$py" -m pip install ${TORCH_GPU_SPEC:-torch}
fi
spec=${TORCH_CPU_SPEC:-torch==2.13.0}
index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
host=$(echo "$index" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
if "$py" -c "import socket,sys; socket.setdefaulttimeout(3); socket.getaddrinfo(sys.argv[1], 443)" "$host" 2>/dev/null; then
    echo "install-torch: no NVIDIA GPU, installing the CPU build $spec from $index"
    exec "$py" -m pip install "$spec" --extra-index-url "$index"
fi
echo "install-torch: no NVIDIA GPU and $host unreachable, installing $spec from pip's sources"
exec "$py" -m pip install "$spec"
