#!/usr/bin/env bash
# The main job: installs what is missing, builds nanodiff, trains the Fashion-MNIST classifier and prints
# its test accuracy. Extra flags go to `nanodiff train-classifier`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNANODIFF_CUDA="${NANODIFF_CUDA:-AUTO}" >/dev/null
cmake --build build -j"$(nproc)" --target nanodiff
build/nanodiff train-classifier "$@"
