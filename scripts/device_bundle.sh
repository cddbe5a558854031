#!/usr/bin/env bash
# Assembles .device/ (git-ignored) for a run of the model pipeline on the device machine, which
# has CUDA but none of the Debian libraries flatbench links and reaches no network:
#   .device/bundle.tar.xz  flatbench and flatbench_tests as built here (scripts/build.sh, CUDA on)
#                          with the shared libraries they load from Debian (compressed: OpenBLAS
#                          and oneDNN alone are ~80 MB); the CUDA libraries come from the device
#   .device/data/          the data the GPU checks read (from ../shared/data)
#   .device/tools/         ../shared/tools/gpu_anchors.py, the Hugging Face side-by-side
# Then name ".device" in the device tool's carry and run backends/cuda/run_checks.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLATBENCH_BUILD_DIR:-build}
data=${FLATBENCH_DATA_DIR:-../shared/data}
fail() { echo "device_bundle: $*" >&2; exit 1; }
[[ -x $build/flatbench && -x $build/tests/flatbench_tests ]] || fail "$build/flatbench or its tests are missing (run scripts/build.sh)"
grep -q '^FLATBENCH_CUDA:BOOL=ON' "$build/CMakeCache.txt" || fail "$build was configured without CUDA (no nvcc)"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .device
cp "$build/flatbench" "$build/tests/flatbench_tests" "$stage/bin/"
# Every library the binaries load except the C/C++ runtime (the device's is newer) and CUDA's.
ldd "$build/flatbench" "$build/tests/flatbench_tests" | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so|/ld-linux|/cuda' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
tar -C "$stage" -cJf .device/bundle.tar.xz bin lib
rm -rf .device/data .device/tools
mkdir -p .device/data .device/tools
for d in stories260K wikitext2 piqa hellaswag openbookqa llama_tokenizer gpt2_tokenizer; do
  [[ -e $data/$d ]] || fail "$data/$d is missing"
  cp -r "$data/$d" .device/data/
done
cp ../shared/tools/gpu_anchors.py .device/tools/
du -sh .device | awk '{print "device_bundle: .device holds " $1}'
