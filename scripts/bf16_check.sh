#!/usr/bin/env bash
# Whether --precision bf16 trains and samples as well as float32 (the bar before calling it usable): trains
# scripts/main.sh's setting (`--preset quick`: dli-unet on 16x16 Fashion-MNIST, one epoch of batch 128, label
# dropout 0.1, EMA of the weights, min-SNR loss weights) from the same seed in f32 and in bf16, runs
# `nanodiff eval` on both (each sampled in its own precision; the bf16 run's weights also sampled in f32,
# which tells training from sampling; the f32 run also with another sampling seed: the eval's own noise),
# and plots both loss curves in one figure.
#
#   scripts/bf16_check.sh [OUT_DIR=runs/bf16_check] [--epochs N] [--n SAMPLES_PER_CLASS] [--seed-reference]
#                         [--max-steps N] [--preset P] [-- EVAL_FLAGS...]
#
# --epochs: 1 by default; --n: samples per class for eval (default 50, as the README's tables);
# --seed-reference also trains f32 and bf16 from seed 1 and evaluates them: the spread between two runs of
# each precision, the noise bf16's difference is to be judged against; --max-steps stops each run early (a
# smoke test of the script); --preset: the training preset (default quick; `nanodiff train --help` lists
# them); flags after -- go to every `nanodiff eval` (e.g. `-- --sampler ddim --steps 20`: the course's DDPM
# 150 takes six minutes an eval on 2 cores). Writes into OUT_DIR: f32/, bf16/ (and f32_seed1/, bf16_seed1/):
# each run's model.h5, loss.csv and train.log; eval/: eval's JSON, table and log per setting;
# loss_f32_bf16.csv (step, f32, bf16); loss_f32_bf16.png (with gnuplot); summary.md (the table). A run
# stopped midway resumes when the script runs again. NANODIFF names the program (default build/nanodiff).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/bf16_check epochs=1 n=50 seed_reference=false max_steps=0 preset=quick eval_flags=()
while [ $# -gt 0 ]; do
    case "$1" in
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --n) n=${2:?--n needs a number}; shift 2 ;;
    --seed-reference) seed_reference=true; shift ;;
    --max-steps) max_steps=${2:?--max-steps needs a number}; shift 2 ;;
    --preset) preset=${2:?--preset needs a name}; shift 2 ;;
    --) shift; eval_flags=("$@"); break ;;
    -*) echo "scripts/bf16_check.sh: unknown flag $1" >&2; exit 1 ;;
    *) out=$1; shift ;;
    esac
done
# shellcheck source=scripts/eval_lib.sh
. scripts/eval_lib.sh
mkdir -p "$out/eval"

train() { # name, precision, seed
    local run=$out/$1 resume=(--preset "$preset") # a resumed run takes its settings from its checkpoint
    [ -f "$run/model.h5" ] && resume=(--resume)
    echo "training $1 (--precision $2, --seed $3, $epochs epoch(s)) into $run"
    mkdir -p "$run"
    "$nanodiff" train --model dli-unet --data fashion-mnist --img-size 16 --epochs "$epochs" --cfg-drop 0.1 \
        --max-steps "$max_steps" --precision "$2" --seed "$3" --out "$run" "${resume[@]}" 2>> "$run/train.err" |
        tee -a "$run/train.log"
}
train f32 f32 0
train bf16 bf16 0
if $seed_reference; then
    train f32_seed1 f32 1
    train bf16_seed1 bf16 1
fi

evaluate() { # name, run, precision, sampling seed
    echo "eval $1 (weights of $2, sampled in $3, --seed $4)"
    eval_json "$out/eval" "$1" --ckpt "$out/$2/model.h5" --n "$n" --precision "$3" --seed "$4" "${eval_flags[@]}"
}
evaluate f32 f32 f32 0
evaluate f32_sampling_seed1 f32 f32 1
evaluate bf16 bf16 bf16 0
evaluate bf16_sampled_f32 bf16 f32 0
if $seed_reference; then
    evaluate f32_seed1 f32_seed1 f32 0
    evaluate bf16_seed1 bf16_seed1 bf16 0
fi

# both loss curves by step (the runs take the same steps) with their trailing means over 20 steps, and, with
# --seed-reference, float32 seed 1's mean: the difference between two float32 seeds is the noise to judge by
seed1=/dev/null
$seed_reference && seed1=$out/f32_seed1/loss.csv
awk -F, 'FNR == 1 { file++; next }
         { loss[file, $1] = $3; if (file == 2) order[++n] = $1 }
         END {
             print "step,f32,bf16,f32_mean20,bf16_mean20,f32_seed1_mean20"
             for (i = 1; i <= n; i++) {
                 s = order[i]
                 if (!((1, s) in loss)) continue
                 has3 = (3, s) in loss
                 for (f = 1; f <= 3; f++) { sum[f] += loss[f, s]; hist[f, i] = loss[f, s] }
                 if (i > 20) for (f = 1; f <= 3; f++) sum[f] -= hist[f, i - 20]
                 k = i < 20 ? i : 20
                 printf "%s,%s,%s,%.6g,%.6g,%s\n", s, loss[1, s], loss[2, s], sum[1] / k, sum[2] / k,
                        has3 ? sprintf("%.6g", sum[3] / k) : ""
             }
         }' "$out/f32/loss.csv" "$out/bf16/loss.csv" "$seed1" > "$out/loss_f32_bf16.csv"
tail_mean() { tail -n 100 "$1" | awk -F, '{ s += $3; k++ } END { if (k) printf "%.4f", s / k }'; }
# the training speed of a run's last session that trained (a resumed finished run trains no step)
speed() { grep -o '[0-9.]* images/s' "$1" | grep -v '^0 ' | tail -n 1; }
if command -v gnuplot > /dev/null; then
    gnuplot <<EOF
set terminal pngcairo size 960,760 font ",11"
set output "$out/loss_f32_bf16.png"
set datafile separator ","
set multiplot layout 2,1 title "training loss, float32 and bf16 from the same seed" noenhanced
set lmargin 12
set grid
set key top right
set ylabel "loss"
set logscale y
set size 1,0.62
set origin 0,0.33
plot "$out/loss_f32_bf16.csv" using "step":"f32" with lines lc rgb "#c6d4ea" notitle, \
     "" using "step":"bf16" with lines lc rgb "#f3c9b5" notitle, \
     "" using "step":"f32_mean20" with lines lw 4 lc rgb "#1f4e9c" title "f32 (mean of 20 steps)", \
     "" using "step":"bf16_mean20" with lines lw 2 dt 2 lc rgb "#c0392b" title "bf16 (mean of 20 steps)"
unset logscale y
set size 1,0.33
set origin 0,0
set xlabel "step"
set ylabel "relative difference"
set yrange [-0.2:0.2]
plot "$out/loss_f32_bf16.csv" using "step":(column("bf16_mean20") / column("f32_mean20") - 1) with lines lw 2 \
         lc rgb "#c0392b" title "bf16 / f32 - 1 (same seed)", \
     "" using "step":(strlen(strcol("f32_seed1_mean20")) ? column("f32_seed1_mean20") / column("f32_mean20") - 1 : NaN) \
         with lines lw 2 lc rgb "#7f8c8d" title "f32 seed 1 / f32 seed 0 - 1 (the noise)"
unset multiplot
EOF
    echo "wrote $out/loss_f32_bf16.png"
else
    echo "gnuplot is not installed: the curves are in $out/loss_f32_bf16.csv (Debian: apt-get install gnuplot-nox)"
fi

{
    echo "eval: nanodiff eval --n $n ${eval_flags[*]:-(the default sampler: DDPM, 150 steps)}, w = 2"
    echo
    echo "| setting | weights trained in | sampled in | loss, last 100 steps | training speed | classified as requested | FD (floor) | sampling time |"
    echo "|---|---|---|---|---|---|---|---|"
    row() { # eval name, run, training precision, sampling precision
        local j=$out/eval/$1.json
        printf '| %s | %s | %s | %s | %s | %.1f%% | %.1f (%.1f) | %.0f s |\n' "$1" "$3" "$4" \
            "$(tail_mean "$out/$2/loss.csv")" "$(speed "$out/$2/train.log")" \
            "$(awk "BEGIN{print 100*$(eval_field accuracy "$j")}")" "$(eval_field fd "$j")" \
            "$(eval_field fd_floor "$j")" "$(eval_field sample_seconds "$j")"
    }
    row f32 f32 f32 f32
    row f32_sampling_seed1 f32 f32 "f32 (seed 1)"
    row bf16 bf16 bf16 bf16
    row bf16_sampled_f32 bf16 bf16 f32
    if $seed_reference; then
        row f32_seed1 f32_seed1 "f32 (seed 1)" f32
        row bf16_seed1 bf16_seed1 "bf16 (seed 1)" bf16
    fi
} > "$out/summary.md"
cat "$out/summary.md"
