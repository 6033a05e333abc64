#!/usr/bin/env bash
# What a lent GPU session owes (issue 6), in three device calls of under 10 minutes each.
# Run from the repository root on the GPU machine; everything lands under $OUT (the
# device tool brings it back) or, without $OUT, under benchmarks/results/gpu/:
#
#   bash benchmarks/gpu_check.sh checks  # info, the never-run CUDA-graph tests, digits on cuda
#   bash benchmarks/gpu_check.sh tests   # the whole suite on cpu, cuda, torch:cuda and jax
#   bash benchmarks/gpu_check.sh bench   # the GPU benchmark (benchmarks/bench_gpu.py)
#
# Before the first call, on the machine without a GPU: `bash benchmarks/gpu_wheels.sh`
# (array-api-compat, array-api-extra and array-api-strict as wheels in .whl/, which the
# GPU machine lacks), and name `.whl` in the device call's `carry`. Files come back as
# <date>-<gpu>-<what>.txt; commit them under benchmarks/results/gpu/.
set -uo pipefail
what=${1:-tests}
out=${OUT:-benchmarks/results/gpu}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
# JAX takes 75% of the GPU's memory at its first use unless told not to; the suite runs
# JAX, CuPy and PyTorch in one process
export XLA_PYTHON_CLIENT_PREALLOCATE=false
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
slug=$(printf '%s' "${gpu:-no-gpu}" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
stem="$out/$(date -u +%Y-%m-%d)-$slug"
# the device machine gets a copy of the working tree without .git: pass the commit in,
# `XPNET_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/gpu_check.sh ...`
export XPNET_COMMIT=${XPNET_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
header="# $(date -u +%Y-%m-%dT%H:%MZ) on: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1) (xpnet $XPNET_COMMIT)"

case "$what" in
checks)
    {
        echo "$header"
        python3 -c 'import sys, numpy, cupy, torch, jax; print("python", sys.version.split()[0], "numpy", numpy.__version__, "cupy", cupy.__version__, "torch", torch.__version__, "jax", jax.__version__, jax.devices())'
        timeout 120 python3 -m xpnet info
        # the parts that never ran anywhere, first and alone: a failure here explains
        # the many that would follow in the suite
        timeout 300 python3 -m pytest -q -p no:cacheprovider -rs \
            tests/test_graph_matmul.py tests/test_graph_plan.py tests/test_compile.py tests/test_cuda_paths.py \
            tests/test_fused_update.py
        timeout 90 python3 -m xpnet train digits --device cuda --quiet
    } 2>&1 | tee "$stem-checks.txt"
    ;;
tests)
    {
        echo "$header"
        # the machine's 16 cores: pytest-xdist workers (it is in the image; without it,
        # one process), each with its own CUDA context, on the one GPU
        workers=$(python3 -c 'import xdist' 2>/dev/null && echo "-n 6")
        echo "# XPNET_TEST_DEVICES=cpu,cuda,torch:cuda,jax python3 -m pytest -q -rs $workers tests"
        XPNET_TEST_DEVICES=cpu,cuda,torch:cuda,jax timeout 540 python3 -m pytest -q -p no:cacheprovider -rs \
            $workers -o faulthandler_timeout=120 tests
    } 2>&1 | tee "$stem-tests.txt"
    ;;
bench)
    {
        echo "$header"
        # the suite rewrites its .md after every child and on SIGTERM: a run cut short
        # still leaves its table
        timeout 540 python3 benchmarks/bench_gpu.py suite --device cuda --out "$out" --max-seconds 420
    } 2>&1 | tee "$stem-bench-log.txt"
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh checks|tests|bench" >&2
    exit 2
    ;;
esac
