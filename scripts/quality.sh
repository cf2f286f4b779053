#!/usr/bin/env bash
# The README's sample-quality table for one checkpoint: `nanodiff eval` (classifier accuracy of guided
# samples, w = 2, and the classifier-feature FD beside its real-vs-real floor) for the course's DDPM
# (150 steps), DDIM at 10, 20, 50 and 150 steps (eta 0, from q(x_T)'s moments), and DDIM 50 from the
# course's N(0, I) start. Prints a markdown row per setting, with the samples' high-frequency energy beside
# the real images' (eval's hf_energy, hf_energy_real); the JSON of each run is kept in OUT_DIR.
#
#   scripts/quality.sh CKPT [SAMPLES_PER_CLASS=50] [OUT_DIR=dirname(CKPT)/quality]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: scripts/quality.sh CKPT [SAMPLES_PER_CLASS] [OUT_DIR]}
n=${2:-50}
out=${3:-$(dirname "$ckpt")/quality}
mkdir -p "$out"
# shellcheck source=scripts/eval_lib.sh
. scripts/eval_lib.sh

echo "| sampler | steps | start | classified as requested | FD (floor) | HF energy (real) | sampling time |"
echo "|---|---|---|---|---|---|---|"
run() { # name, then eval flags
    local name=$1
    shift
    eval_json "$out" "$name" --ckpt "$ckpt" --n "$n" "$@"
    local j=$out/$name.json
    printf '| %s | %s | %s | %.1f%% | %.1f (%.1f) | %.3f (%.3f) | %.0f s |\n' "$(eval_field sampler "$j")" \
        "$(eval_field steps "$j")" "$(eval_field start "$j")" "$(awk "BEGIN{print 100*$(eval_field accuracy "$j")}")" \
        "$(eval_field fd "$j")" "$(eval_field fd_floor "$j")" "$(eval_field hf_energy "$j")" \
        "$(eval_field hf_energy_real "$j")" "$(eval_field sample_seconds "$j")"
}
run ddpm-150 --sampler ddpm
for steps in 10 20 50 150; do run "ddim-$steps" --sampler ddim --steps "$steps"; done
run ddim-50-noise --sampler ddim --steps 50 --start noise
