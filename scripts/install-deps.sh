#!/usr/bin/env bash
# Installs the Debian packages nanodiff needs that are missing; quiet and quick when all are present.
#   scripts/install-deps.sh          build, run and test
#   scripts/install-deps.sh --dev    also PyTorch, h5py and PIL, to regenerate test fixtures and run benchmarks
set -euo pipefail

packages=(cmake make gcc pkg-config libopenblas-openmp-dev libhdf5-dev zlib1g-dev dataset-fashion-mnist
          clang libclang-rt-dev libomp-dev) # clang: the libFuzzer runs of scripts/test.sh
if [ "${1:-}" = "--dev" ]; then
    packages+=(python3-torch python3-h5py python3-pil python3-numpy)
fi

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
