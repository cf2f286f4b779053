#!/usr/bin/env bash
# The guidance trade-off of one checkpoint: `nanodiff eval` at each guidance weight w (the course's
# (1 + w) e_c - w e_u; the same seed for every w), the classifier accuracy of the samples against their
# classifier-feature FD (higher w: samples more clearly of their class, less varied). Writes DIR/sweep.csv
# (w,accuracy,confidence,fd,fd_floor,sampler,steps,per_class,sample_seconds), each run's JSON, table and log
# beside it, and DIR/sweep.png (tools/plot.sh sweep) when gnuplot is installed; prints a row per w as it goes.
#
#   scripts/guidance_sweep.sh CKPT [--n N] [--sampler S] [--steps K] [--w LIST] [--out DIR] [-- EVAL_FLAGS...]
#     --n        samples a class for each w (default 50)
#     --sampler  eval's sampler and its steps (default eval's: the course's DDPM, 150 model calls a sample;
#     --steps    ddim --steps 50 makes a third of them)
#     --w        comma list of weights (default 0,0.5,1,...,5)
#     --out      where the files go (default dirname(CKPT)/sweep)
#     after --   more flags for every eval run (--device cpu, --cache DIR, --start noise, ...)
# NANODIFF names the program (default build/nanodiff of this checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: scripts/guidance_sweep.sh CKPT [--n N] [--sampler S] [--steps K] [--w LIST] [--out DIR] [-- EVAL_FLAGS...]"
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then echo "$usage" >&2; exit 1; fi
ckpt=$1
shift
n=50 out="" ws="0,0.5,1,1.5,2,2.5,3,3.5,4,4.5,5"
sampler_flags=() extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --n | --sampler | --steps | --w | --out)
        [ $# -ge 2 ] || { echo "guidance_sweep: $1 expects a value; $usage" >&2; exit 1; } ;;
    esac
    case "$1" in
    --n) n=$2; shift 2 ;;
    --sampler | --steps) sampler_flags+=("$1" "$2"); shift 2 ;;
    --w) ws=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "guidance_sweep: unknown flag \"$1\"; $usage" >&2; exit 1 ;;
    esac
done
[ -r "$ckpt" ] || { echo "guidance_sweep: $ckpt: cannot read the checkpoint" >&2; exit 1; }
out=${out:-$(dirname "$ckpt")/sweep}
IFS=',' read -r -a w_list <<< "$ws"
[ ${#w_list[@]} -ge 1 ] || { echo "guidance_sweep: --w expects a comma list of numbers, got \"$ws\"" >&2; exit 1; }
for w in "${w_list[@]}"; do
    [[ $w =~ ^-?[0-9]+(\.[0-9]*)?$ ]] || { echo "guidance_sweep: --w: \"$w\" is not a number" >&2; exit 1; }
done
mkdir -p "$out"
NANODIFF=${NANODIFF:-$root/build/nanodiff}
# shellcheck source=scripts/eval_lib.sh
. "$root/scripts/eval_lib.sh"

# null (eval's JSON for a number that is not finite) as gnuplot and awk read it
number() { local v; v=$(eval_field "$1" "$2"); [ "$v" = null ] && echo NaN || echo "$v"; }

csv=$out/sweep.csv
rows=$out/.sweep.csv.partial # renamed to sweep.csv when every w is in
trap 'rm -f "$rows"' EXIT
echo "w,accuracy,confidence,fd,fd_floor,sampler,steps,per_class,sample_seconds" > "$rows"
echo "| w | classified as requested | FD (floor) | sampling time |"
echo "|---|---|---|---|"
for w in "${w_list[@]}"; do
    name=w$w
    eval_json "$out" "$name" --ckpt "$ckpt" --n "$n" --w "$w" ${sampler_flags[@]+"${sampler_flags[@]}"} \
        ${extra[@]+"${extra[@]}"}
    j=$out/$name.json
    accuracy=$(number accuracy "$j") fd=$(number fd "$j") floor=$(number fd_floor "$j")
    echo "$w,$accuracy,$(number confidence "$j"),$fd,$floor,$(eval_field sampler "$j"),$(eval_field steps "$j"),$(eval_field per_class "$j"),$(eval_field sample_seconds "$j")" >> "$rows"
    printf '| %s | %.1f%% | %.1f (%.1f) | %.0f s |\n' "$w" "$(awk "BEGIN{print 100*$accuracy}")" "$fd" "$floor" \
        "$(eval_field sample_seconds "$j")"
done
mv "$rows" "$csv"
trap - EXIT
echo "wrote $csv"
if command -v gnuplot > /dev/null; then
    "$root/tools/plot.sh" sweep "$csv" "$out/sweep.png"
else
    echo "guidance_sweep: note: gnuplot is not installed (apt-get install gnuplot-nox), so no plot; the CSV is complete"
fi
