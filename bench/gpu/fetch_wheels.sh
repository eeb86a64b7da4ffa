#!/usr/bin/env bash
# Download into .whl/ the wheels the GPU machine lacks (it has no registry access): keras and the
# dependencies of keras and sacremoses that are not installed there. Run on a machine with access
# to PyPI; the run tool carries .whl/ (git-ignored) with `carry: [".whl"]`.
#
#   bash bench/gpu/fetch_wheels.sh
#
# The GPU machine has Python 3.12, torch, JAX with CUDA, transformers 5, numpy, h5py, safetensors,
# huggingface_hub (and so tqdm, packaging, typing-extensions). Versions are those this project's CPU
# machine runs keras 3.15.1 with. Fails if the total exceeds the 64 MiB a call may carry.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${XLM_WHEELS:-$ROOT/.whl}"            # another directory, e.g. to try run.sh on another Python
PYTHON_VERSION="${XLM_WHEEL_PYTHON:-3.12}"  # the GPU machine's
LIMIT_MIB=64

WHEELS=(
    keras==3.15.1
    # keras' dependencies (numpy and h5py are on the GPU machine)
    absl-py==2.5.1
    namex==0.1.0
    optree==0.20.0
    ml-dtypes==0.7.0
    rich==15.0.0
    markdown-it-py==4.3.0
    mdurl==0.1.2
    pygments==2.20.0
    packaging==26.2
    typing-extensions==4.16.0  # optree's (torch has it too)
    # the tokenizer: sacremoses and its dependencies
    sacremoses==0.2.0
    click==8.4.0
    joblib==1.6.0
    cloudpickle==3.1.3  # joblib's (no longer vendored there)
    regex==2026.5.9
    tqdm==4.70.1
)

mkdir -p "$DEST"
python -m pip download --quiet --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --no-deps -d "$DEST" "${WHEELS[@]}"

python - "$DEST" "$LIMIT_MIB" "${WHEELS[@]}" <<'EOF'
import os
import re
import sys

dest, limit_mib, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
files = sorted(f for f in os.listdir(dest) if f.endswith(".whl"))
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
names = {norm(f.split("-")[0]) for f in files}
missing = [w for w in wanted if norm(w.split("==")[0]) not in names]
if missing:
    sys.exit(f"fetch_wheels: no wheel downloaded for {', '.join(missing)}")
total = 0
for f in files:
    size = os.path.getsize(os.path.join(dest, f))
    total += size
    print(f"  {size / 2**20:7.2f} MiB  {f}")
print(f"total {total / 2**20:.2f} MiB in {len(files)} wheels in {dest} (limit {limit_mib} MiB)")
if total > limit_mib * 2**20:
    sys.exit(f"fetch_wheels: {total / 2**20:.2f} MiB is over the {limit_mib} MiB a device call can carry; "
             "remove old wheels from .whl/ or drop packages the GPU machine already has")
EOF
