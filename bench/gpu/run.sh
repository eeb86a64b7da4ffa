#!/usr/bin/env bash
# The prepared GPU run: install what the GPU machine lacks from .whl/ (no registry there), then run
# bench/gpu/gpu_bench.py with Keras on JAX. See bench/gpu/README.md.
#
#   bash bench/gpu/run.sh [--device gpu|cpu] [--out DIR] [--quick] [other gpu_bench.py options]
#
# Wheels go into a private directory (not the system site-packages), only those whose module is
# not importable, so a machine that has keras (this one, CI) installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEVICE=gpu
OUT="$ROOT/bench/out/gpu"
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#*=}"; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done
case "$DEVICE" in
    gpu|cpu) ;;
    *) echo "run.sh: error: --device must be gpu or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
WHEELS="${XLM_WHEELS:-$ROOT/.whl}"
SITE="${XLM_GPU_SITE:-${TMPDIR:-/tmp}/xlm-gpu-site}"
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # JAX would take 75 % of the GPU and starve PyTorch
export TF_CPP_MIN_LOG_LEVEL=2
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # the project itself from the tree

# distribution=module of every wheel fetch_wheels.sh downloads
PACKAGES="keras=keras absl-py=absl namex=namex optree=optree ml-dtypes=ml_dtypes rich=rich
markdown-it-py=markdown_it mdurl=mdurl pygments=pygments packaging=packaging typing-extensions=typing_extensions
sacremoses=sacremoses click=click joblib=joblib cloudpickle=cloudpickle regex=regex tqdm=tqdm"
MISSING=$("$PYTHON" - $PACKAGES <<'PY'
import importlib.util
import sys

print(" ".join(pair.split("=")[0] for pair in sys.argv[1:] if importlib.util.find_spec(pair.split("=")[1]) is None))
PY
)
if [ -n "$MISSING" ]; then
    if [ ! -d "$WHEELS" ]; then
        echo "run.sh: error: missing $MISSING and no $WHEELS directory: run bench/gpu/fetch_wheels.sh on a" \
             "machine with PyPI access and carry .whl to this one" >&2
        exit 2
    fi
    echo "installing from $WHEELS into $SITE: $MISSING"
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        # --no-deps: exactly the missing ones (their other dependencies are on the machine already)
        "$PYTHON" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" --target "$SITE" $MISSING
    else  # no pip: a wheel is a zip archive of what lands in site-packages
        "$PYTHON" - "$WHEELS" "$SITE" $MISSING <<'PY'
import os
import re
import sys
import zipfile

wheels, site, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
files = {norm(f.split("-")[0]): f for f in os.listdir(wheels) if f.endswith(".whl")}
for name in wanted:
    if norm(name) not in files:
        sys.exit(f"run.sh: error: no wheel for {name} in {wheels}: rerun bench/gpu/fetch_wheels.sh")
    zipfile.ZipFile(os.path.join(wheels, files[norm(name)])).extractall(site)
PY
    fi
fi

mkdir -p "$OUT"
cd "$ROOT"
exec "$PYTHON" bench/gpu/gpu_bench.py --device "$DEVICE" --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
