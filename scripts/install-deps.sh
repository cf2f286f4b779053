#!/usr/bin/env bash
# Installs the Debian packages nanodiff needs that are missing; quiet and quick when all are present.
#   scripts/install-deps.sh          build, run and test
#   scripts/install-deps.sh --test   also PyTorch and h5py, so reference.checkpoint_torch runs the checkpoint
#                                    converter's round trip (CI; about 40 MB to download, 200 MB installed)
#   scripts/install-deps.sh --dev    also PIL and numpy, to regenerate test fixtures and run benchmarks
set -euo pipefail

# libdnnl-dev: oneDNN, the CPU convolutions (optional: without it the build falls back to im2col + GEMM);
# Open MPI: data-parallel training (optional: without it nanodiff trains in one process);
# gnuplot-nox: tools/plot.sh's loss and guidance-sweep plots (optional: the CSV files are written without it)
packages=(cmake make gcc pkg-config libopenblas-openmp-dev libdnnl-dev libhdf5-dev zlib1g-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin gnuplot-nox
          clang clang-format libclang-rt-dev libomp-dev) # clang: the libFuzzer runs of scripts/test.sh
case "${1:-}" in
--test) packages+=(python3-torch python3-h5py) ;;
--dev) packages+=(python3-torch python3-h5py python3-pil python3-numpy) ;;
esac

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
