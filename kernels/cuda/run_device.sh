#!/usr/bin/env bash
# One device-machine session's work in one command (docs/backends.md#device-workflow): build
# the standalone CUDA project, count the tensor-core instructions in our kernels' SASS,
# run the device tests, then the GEMM sweep with the arguments given.
#   kernels/cuda/run_device.sh [--skip-sweep] [flatbench-gpu gemm options...]
# Run from the repository root with .device carried (sqlite3 + nlohmann headers); writes
# under $OUT: nvidia-smi.txt build.log sass_counts.txt test.log [sanitizer.log] [probe.log]
# sweep.log [layer.log] flatbench_gpu.db (FB_SANITIZE=1: compute-sanitizer pass; FB_PROBE='MxNxK ...':
# probe table; FB_LAYER='flatbench-gpu layer options': decoder-layer timings into the same DB)
set -uo pipefail
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
SKIP_SWEEP=0
if [[ "${1:-}" == "--skip-sweep" ]]; then SKIP_SWEEP=1; shift; fi

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv

echo "== build"
if ! { cmake -S kernels/cuda -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DFB_DEPS_PREFIX="$PWD/.device" &&
       ninja -C build-cuda; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi

echo "== SASS: tensor-core instructions per kernel"
cuobjdump -sass build-cuda/libflatbench_cuda.a 2>/dev/null | awk '
  /Function :/ { fn = $3 }
  /IGMMA|HGMMA|QGMMA|HMMA|IMMA/ { for (i = 1; i <= NF; ++i) if ($i ~ /^(IGMMA|HGMMA|QGMMA|HMMA|IMMA)/) { split($i, op, "."); n[fn " " op[1]]++; ex[op[1]] = $i } }
  END { for (k in n) print n[k], k; for (e in ex) print "example:", ex[e] }' | sort -k2 | tee "$OUT/sass_counts.txt"

echo "== tests"
./build-cuda/flatbench-gpu-test 2>&1 | tee "$OUT/test.log"
test_rc=${PIPESTATUS[0]}
echo "test exit code: $test_rc"
if [[ -n "${FB_SANITIZE:-}" ]]; then
  echo "== compute-sanitizer memcheck"
  timeout 240 compute-sanitizer --tool memcheck ./build-cuda/flatbench-gpu-test > "$OUT/sanitizer.log" 2>&1
  echo "sanitizer exit code: $?"; grep -E "ERROR SUMMARY|FAIL|ALL PASSED" "$OUT/sanitizer.log" | head
fi
if [[ -n "${FB_PROBE:-}" ]]; then
  echo "== probe: our GEMM under forced tile widths / split counts"
  ./build-cuda/flatbench-gpu probe $FB_PROBE --flush-l2 2>&1 | tee "$OUT/probe.log"
fi
[[ $SKIP_SWEEP == 1 ]] && exit $test_rc

echo "== sweep"
./build-cuda/flatbench-gpu gemm --out "$OUT/flatbench_gpu.db" "$@" 2>&1 | tee "$OUT/sweep.log"
if [[ -n "${FB_LAYER:-}" ]]; then
  echo "== decoder layer"
  ./build-cuda/flatbench-gpu layer --out "$OUT/flatbench_gpu.db" $FB_LAYER 2>&1 | tee "$OUT/layer.log"
fi
exit $test_rc
