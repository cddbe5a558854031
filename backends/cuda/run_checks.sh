#!/usr/bin/env bash
# On the device machine (docs/backends.md#device-workflow): the CUDA execution backend's checks
# in one call, from the bundle scripts/device_bundle.sh made (carry .device):
#   1. the CUDA backend's tests (tests/execution_backends_test.cpp, tests/op_plan_test.cpp)
#      against the CPU reference, every method's operators included;
#   2. configs/cuda_check.yaml: stories260K PPL and zero-shot on cpu, cuda/fp32, cuda/fp16;
#      configs/cuda_methods.yaml (step "methods"): every method of configs/flatquant.yaml on each;
#   3. configs/cuda_speed.yaml: LLaMA-2-7B / OPT-6.7B PPL-pass throughput, then Hugging Face
#      transformers on the same shapes (gpu_anchors.py hf) side by side; step "speed_methods":
#      configs/cuda_speed_methods.yaml, the same pass with each method's operators.
# Everything lands in $OUT: tests.log, run.log, cuda.db (fold it in with `flatbench merge`),
# anchors.json. Every step has a watchdog (timeout), so a hang costs minutes, not the session.
#   bash backends/cuda/run_checks.sh [tests,check,methods,speed,speed_methods,anchors]
# FB_TEST_FILTER narrows the tests step (a gtest filter; default: every backend test).
set -uo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-tests,check,methods,speed,anchors}
out=${OUT:-/tmp/fb-out}
mkdir -p "$out" /tmp/fb
tar -C /tmp/fb -xJf .device/bundle.tar.xz || exit 1
cuda_lib=/usr/local/cuda/lib64
[[ -e $cuda_lib/libcublas.so.13 ]] || cuda_lib=$(dirname "$(find / -xdev -name 'libcublas.so.13*' -print -quit 2>/dev/null)")
export LD_LIBRARY_PATH=/tmp/fb/lib:$cuda_lib:${LD_LIBRARY_PATH:-}
export FLATBENCH_DATA_DIR=$PWD/.device/data FLATBENCH_CACHE_DIR=/tmp/fb/cache
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
has() { [[ ",$steps," == *",$1,"* ]]; }
if has tests; then
  timeout 420 /tmp/fb/bin/flatbench_tests --gtest_filter="${FB_TEST_FILTER:-ExecutionBackends.*:CudaBackend.*:OpPlan.*}" 2>&1 | tee "$out/tests.log"
fi
if has check; then
  timeout 300 /tmp/fb/bin/flatbench run configs/cuda_check.yaml --db "$out/cuda.db" 2>&1 | tee "$out/run.log"
fi
if has methods; then
  timeout 540 /tmp/fb/bin/flatbench run configs/cuda_methods.yaml --db "$out/cuda.db" 2>&1 | tee -a "$out/run.log"
fi
if has speed; then
  timeout 420 /tmp/fb/bin/flatbench run configs/cuda_speed.yaml --db "$out/cuda.db" 2>&1 | tee -a "$out/run.log"
fi
if has speed_methods; then
  timeout 540 /tmp/fb/bin/flatbench run configs/cuda_speed_methods.yaml --db "$out/cuda.db" 2>&1 | tee -a "$out/run.log"
fi
if has anchors; then
  timeout 300 python3 .device/tools/gpu_anchors.py /tmp hf 2>&1 | tee "$out/anchors.json"
fi
[[ -e $out/cuda.db ]] && /tmp/fb/bin/flatbench report --table backends --format md --db "$out/cuda.db" > "$out/backends.md" 2>&1
exit 0
