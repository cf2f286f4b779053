#!/usr/bin/env bash
# nanodiff's CSV files as PNG plots, drawn by gnuplot (Debian: gnuplot-nox; scripts/install-deps.sh installs it)
# from the scripts beside this one:
#   tools/plot.sh loss RUN_DIR/loss.csv OUT.png   training loss against step (train and train-clip write loss.csv)
#   tools/plot.sh sweep DIR/sweep.csv OUT.png     guidance sweep (scripts/guidance_sweep.sh): accuracy against FD,
#                                                 each point labelled by w, and both against w
# Exit status: 0 written, 1 a bad argument or file, 2 gnuplot missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: tools/plot.sh loss|sweep FILE.csv OUT.png"
[ $# -eq 3 ] || { echo "$usage" >&2; exit 1; }
kind=$1 csv=$2 out=$3
case "$kind" in
loss) columns=(step loss) ;;
sweep) columns=(w accuracy fd fd_floor) ;;
*) echo "tools/plot.sh: expected loss or sweep, got \"$kind\"; $usage" >&2; exit 1 ;;
esac
command -v gnuplot > /dev/null || {
    echo "tools/plot.sh: gnuplot is not installed (Debian: apt-get install gnuplot-nox, or scripts/install-deps.sh)" >&2
    exit 2
}
[ -r "$csv" ] || { echo "tools/plot.sh: $csv: cannot read the file" >&2; exit 1; }
header=$(head -n 1 "$csv" | tr -d '\r')
for column in "${columns[@]}"; do
    case ",$header," in
    *",$column,"*) ;;
    *) echo "tools/plot.sh: $csv: no column \"$column\" in its header \"$header\" (expected ${columns[*]})" >&2
       exit 1 ;;
    esac
done
[ "$(wc -l < "$csv")" -ge 2 ] || { echo "tools/plot.sh: $csv: no data row below the header" >&2; exit 1; }
# into a temporary file renamed into place, so OUT.png is whole or untouched
tmp=$(mktemp "$(dirname "$out")/.plot.XXXXXX")
trap 'rm -f "$tmp"' EXIT
gnuplot -c "$here/plot_$kind.gp" "$csv" "$tmp" || { echo "tools/plot.sh: gnuplot failed on $csv" >&2; exit 1; }
chmod "$(printf '%o' $((0666 & ~0$(umask))))" "$tmp" # mktemp's file is private; a plot is not
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
