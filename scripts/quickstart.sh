#!/usr/bin/env bash
# README command 1: install what is missing, build, run the default sweep on the shipped data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
./build/flatbench run configs/quickstart.yaml "$@"
