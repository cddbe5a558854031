#!/usr/bin/env bash
# Assembles .device/ (git-ignored), the dependency prefix the device machine's standalone CUDA
# build reads (kernels/cuda/CMakeLists.txt FB_DEPS_PREFIX): the nlohmann-json and xxHash headers
# and SQLite's headers and static library, copied from this machine's Debian packages (which
# scripts/deps.sh installs). The device machine has none of them and reaches no network.
#   bash scripts/device_prefix.sh   # then name ".device" in the device tool's carry
set -euo pipefail
cd "$(dirname "$0")/.."
need() { [[ -e "$1" ]] || { echo "device_prefix: $1 is missing (run scripts/deps.sh)" >&2; exit 1; }; }
need /usr/include/nlohmann/json.hpp
need /usr/include/xxhash.h
need /usr/include/sqlite3.h
need /usr/lib/x86_64-linux-gnu/libsqlite3.a
rm -rf .device
mkdir -p .device/include .device/sqlite/usr/include .device/sqlite/usr/lib/x86_64-linux-gnu
cp -r /usr/include/nlohmann .device/include/
cp /usr/include/xxhash.h .device/include/
cp /usr/include/sqlite3.h /usr/include/sqlite3ext.h .device/sqlite/usr/include/
cp /usr/lib/x86_64-linux-gnu/libsqlite3.a .device/sqlite/usr/lib/x86_64-linux-gnu/
du -sh .device | awk '{print "device_prefix: .device holds " $1}'
