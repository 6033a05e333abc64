#!/usr/bin/env bash
# Wheels the GPU machine lacks, for `benchmarks/gpu_check.sh` (name `.whl` in the device
# call's `carry`; .gitignore keeps the folder out of git). The versions are the ones the
# CPU suite last passed with; the machine has Python 3.12 and can download nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
for req in array-api-compat==1.16.0 array-api-extra==0.11.5 array-api-strict==2.6.1; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "$req"
done
ls -l .whl
