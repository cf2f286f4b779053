#!/usr/bin/env bash
# The main job: installs what is missing, builds nanodiff, trains the course's class-conditional U-Net on
# Fashion-MNIST with classifier-free-guidance label dropout, and writes samples.png: guided samples (w = 2),
# one row per class (top to bottom: top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag,
# ankle boot).
#
# Quick settings by default (one epoch: about 6 minutes on 2 CPU cores, seconds on a GPU); the course's
# settings are one flag away:  scripts/main.sh --epochs 3
# Stopped midway (Ctrl-C writes a checkpoint), it resumes where it stopped when run again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNANODIFF_CUDA="${NANODIFF_CUDA:-AUTO}" >/dev/null
cmake --build build -j"$(nproc)" --target nanodiff

run=runs/quick
resume=()
[ -f "$run/model.h5" ] && resume=(--resume)
build/nanodiff train --model dli-unet --data fashion-mnist --img-size 16 --epochs 1 --cfg-drop 0.1 \
    --out "$run" "${resume[@]}" "$@"
build/nanodiff sample --ckpt "$run/model.h5" --w 2 --class all --n 10 -o samples.png
