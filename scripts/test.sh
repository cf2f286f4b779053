#!/usr/bin/env bash
# Builds nanodiff and runs every test: the full suite, then the unit, gradient, reference and data
# suites again under AddressSanitizer + UndefinedBehaviorSanitizer (leaks included), then a bounded libFuzzer
# run of each fuzz harness (clang; NANODIFF_FUZZ_SECONDS each, 5 by default). The sanitized build leaves
# oneDNN out, so the fallback convolutions (im2col + GEMM) pass every suite too.
# CUDA: AUTO by default (on when nvcc is found); CI (CI=true) insists on ON so CUDA code always compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

cuda=${NANODIFF_CUDA:-AUTO}
if [ "${CI:-}" = "true" ]; then
    # CI runs everything: CUDA code must compile, and the PyTorch round trip of checkpoints must run, not skip
    scripts/install-deps.sh --test
    cuda=ON
    export ND_REQUIRE_TORCH=1
else
    scripts/install-deps.sh
fi
# the layout .clang-format describes (notebooks/exercises keeps its own: see its .clang-format), in CI too,
# so that a change the local run would refuse cannot land
git ls-files '*.c' '*.h' '*.cu' | xargs clang-format --dry-run --Werror
jobs=$(nproc)
# ctest -j runs suites side by side: OpenMP threads that spin at barriers while a teammate waits for a core
# slow everything several-fold, so test processes sleep instead (the nanodiff program does the same)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNANODIFF_CUDA="$cuda" >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNANODIFF_CUDA=OFF -DNANODIFF_DNNL=OFF -DNANODIFF_SANITIZE=ON \
    >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest -j"$jobs" --output-on-failure -L 'unit|gradcheck|reference|data')

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DNANODIFF_CUDA=OFF -DNANODIFF_FUZZ=ON \
      -DNANODIFF_FUZZ_SECONDS="${NANODIFF_FUZZ_SECONDS:-5}" >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_idx fuzz_hdf5 fuzz_checkpoint fuzz_flags fuzz_tokenizer
(cd build-fuzz && ctest -j"$jobs" --output-on-failure -L fuzz)
