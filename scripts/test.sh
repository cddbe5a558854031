#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole test suite — once in the
# Release build, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
# Sanitizers: a separate build tree (CUDA off: nvcc's host code is not instrumented).
FLATBENCH_BUILD_DIR=build-sanitize bash scripts/build.sh -DFLATBENCH_SANITIZE=ON -DFLATBENCH_CUDA=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-sanitize && ctest --output-on-failure -j"$(nproc)" --timeout 900)
