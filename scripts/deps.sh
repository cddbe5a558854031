#!/usr/bin/env bash
# Installs the Debian packages flatbench builds against, if any is missing (run as root).
set -euo pipefail
packages=(
  cmake ninja-build g++ pkg-config git
  libeigen3-dev libopenblas-dev libyaml-cpp-dev libsqlite3-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libsentencepiece-dev libxxhash-dev libbenchmark-dev libgtest-dev libgmock-dev
  libdnnl-dev ocl-icd-opencl-dev  # oneDNN's CMake config needs OpenCL, only a Recommends of libdnnl-dev
  slurm-wlm munge
  zlib1g-dev gnuplot-nox chromium  # reports: PNG reader, plots, dashboard render test
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "flatbench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
