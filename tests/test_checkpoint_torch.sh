#!/bin/sh
# Checkpoints against PyTorch: checkpoint_export writes nanodiff checkpoints with a fixed input batch and the
# models' outputs; tests/checkpoint_torch_check.py converts them with tools/checkpoint_convert.py, runs the
# course's models (tools/course_unet.py) on the same input, and converts back; the converted-back checkpoints
# must load in nanodiff. Skipped (77) where Debian's python3-torch or python3-h5py is missing, unless
# ND_REQUIRE_TORCH=1 (CI, after scripts/install-deps.sh --test), where that is a failure.
#   test_checkpoint_torch.sh CHECKPOINT_EXPORT SOURCE_DIR
set -eu
export_exe=$1
source_dir=$2
python=/usr/bin/python3

if ! why=$($python -c 'import torch, h5py' 2>&1); then
    if [ "${ND_REQUIRE_TORCH:-0}" = "1" ]; then
        echo "FAILED: $python cannot import torch and h5py, which ND_REQUIRE_TORCH=1 requires: $why"
        exit 1
    fi
    echo "skipped: $python cannot import torch and h5py (install python3-torch and python3-h5py): $why"
    exit 77
fi
dir=$(mktemp -d /tmp/nd_test_ckpt_torch_XXXXXX)
trap 'rm -rf "$dir"' EXIT

# the models are small: one thread keeps OpenMP from spin-waiting against ctest's other jobs
export OMP_NUM_THREADS=1
"$export_exe" "$dir"
$python "$source_dir/tests/checkpoint_torch_check.py" "$dir" "$source_dir"
"$export_exe" --load "$dir/dli-unet.back.h5" "$dir/dli-unet-uncond.back.h5" "$dir/dli-unet-v1.back.h5" \
    "$dir/from-flags.h5"
