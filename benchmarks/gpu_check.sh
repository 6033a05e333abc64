#!/usr/bin/env bash
# The CUDA runs a GPU machine owes: the parity suite on cupy and torch-cuda (and JAX on
# its GPU where present), `python -m xpnet info`, the digits script with --device cuda,
# and the MLP step benchmark on the GPU. Writes everything under $OUT (device tool) or
# benchmarks/results/. Run from the repository root:
#
#   bash benchmarks/gpu_check.sh
#
# On the lent GPU machine, array-api-compat, array-api-extra and array-api-strict are
# not installed: carry them as wheels in .whl/ (see the device tool's README) and this
# script installs them first.
set -uo pipefail
out=${OUT:-benchmarks/results}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
{
    echo "# $(date -u +%Y-%m-%d) on: ${gpu:-no nvidia-smi}"
    python3 -c 'import sys, numpy, cupy; print("python", sys.version.split()[0], "numpy", numpy.__version__, "cupy", cupy.__version__)'
    python3 -m xpnet info
} 2>&1 | tee "$out/cuda_info.txt"
XPNET_TEST_DEVICES=cpu,cuda,torch:cuda,jax python3 -m pytest -q -rs -p no:cacheprovider tests 2>&1 | tee "$out/cuda_tests.txt"
python3 -m xpnet train digits --device cuda --quiet 2>&1 | tee "$out/cuda_train_digits.txt"
{
    echo "# $(date -u +%Y-%m-%d) on: ${gpu:-no nvidia-smi}"
    for b in 128 1024 8192; do python3 benchmarks/bench_mlp_step.py --device cuda --batch "$b" --repeat 30; done
} 2>&1 | tee "$out/mlp_step_cuda.txt"
