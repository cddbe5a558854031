#!/usr/bin/env bash
# Configures and builds flatbench (Release) into ${FLATBENCH_BUILD_DIR:-build}. Where nvcc is
# present the CUDA kernels and tools are built too (their tests skip cleanly without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLATBENCH_BUILD_DIR:-build}
cuda=OFF
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda=ON
  export PATH="$PATH:/usr/local/cuda/bin"
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLATBENCH_CUDA="$cuda" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
