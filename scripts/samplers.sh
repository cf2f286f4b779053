#!/usr/bin/env bash
# The samplers side by side on one checkpoint: `nanodiff eval` (classifier accuracy of guided samples,
# w = 2, and the classifier-feature FD beside its real-vs-real floor) for the course's DDPM (150 steps),
# DDIM, Euler, Heun and DPM-Solver++ at 10, 20 and 50 steps, trailing spacing for the few-step samplers
# (the same seed and start for all). Prints a markdown row per setting with its model calls and the samples'
# high-frequency energy beside the real images' (eval's hf_energy, hf_energy_real); the JSON of each run is
# kept in OUT_DIR. SAMPLERS picks the few-step samplers (e.g. "ddim heun dpm-solver++": Euler's update is
# DDIM's with eta 0, the same samples up to rounding); NO_DDPM=1 leaves out the 150-step DDPM row;
# EVAL_FLAGS adds flags to every run (e.g. "--guidance-interval 0.5,2.5 --guidance-rescale 1").
#
#   scripts/samplers.sh CKPT [SAMPLES_PER_CLASS=50] [OUT_DIR=dirname(CKPT)/samplers] [STEPS="10 20 50"]
#                      [SAMPLERS="ddim euler heun dpm-solver++"]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: scripts/samplers.sh CKPT [SAMPLES_PER_CLASS] [OUT_DIR] [STEPS]}
n=${2:-50}
out=${3:-$(dirname "$ckpt")/samplers}
step_counts=${4:-10 20 50}
samplers=${5:-ddim euler heun dpm-solver++}
mkdir -p "$out"
# shellcheck source=scripts/eval_lib.sh
. scripts/eval_lib.sh

echo "| sampler | steps | model calls | spacing | classified as requested | FD (floor) | HF energy (real) | sampling time |"
echo "|---|---|---|---|---|---|---|---|"
run() { # name, then eval flags
    local name=$1
    shift
    # shellcheck disable=SC2086 # EVAL_FLAGS is a list of flags
    eval_json "$out" "$name" --ckpt "$ckpt" --n "$n" "$@" ${EVAL_FLAGS:-}
    local j=$out/$name.json
    printf '| %s | %s | %s | %s | %.1f%% | %.1f (%.1f) | %.3f (%.3f) | %.0f s |\n' "$(eval_field sampler "$j")" \
        "$(eval_field steps "$j")" "$(eval_field model_calls "$j")" "$(eval_field spacing "$j")" \
        "$(awk "BEGIN{print 100*$(eval_field accuracy "$j")}")" "$(eval_field fd "$j")" "$(eval_field fd_floor "$j")" \
        "$(eval_field hf_energy "$j")" "$(eval_field hf_energy_real "$j")" "$(eval_field sample_seconds "$j")"
}
[ "${NO_DDPM:-0}" = 1 ] || run ddpm-150 --sampler ddpm
for sampler in $samplers; do
    for steps in $step_counts; do run "$sampler-$steps" --sampler "$sampler" --steps "$steps" --spacing trailing; done
done
