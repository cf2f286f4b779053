#!/bin/sh
# tools/plot.sh on small CSV files: a training loss log and a guidance sweep each become a valid PNG of the
# plot's size (signature and IHDR read back); a file without the expected columns and an unknown plot kind are
# refused with a message and leave no PNG. Skipped (77) where gnuplot is not installed.
#   test_plot.sh SOURCE_DIR
set -eu
source_dir=$1
if ! command -v gnuplot > /dev/null; then
    echo "skipped: gnuplot is not installed (Debian: gnuplot-nox; scripts/install-deps.sh installs it)"
    exit 77
fi
dir=$(mktemp -d /tmp/nd_test_plot_XXXXXX)
trap 'rm -rf "$dir"' EXIT
plot=$source_dir/tools/plot.sh
failed=0
fail() { echo "FAILED: $*"; failed=1; }

# "WIDTH HEIGHT" of a PNG from its IHDR, or nothing when the file is no PNG
png_size() {
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 0
    [ "$(od -An -c -j12 -N4 "$1" | tr -d ' \n')" = IHDR ] || return 0
    echo "$(od -An -tu4 --endian=big -j16 -N4 "$1" | tr -d ' ') $(od -An -tu4 --endian=big -j20 -N4 "$1" | tr -d ' ')"
}

printf 'step,epoch,loss\n' > "$dir/loss.csv"
i=1
while [ $i -le 120 ]; do # long enough for the moving average
    echo "$i,$((i / 60)),$(awk "BEGIN{print 0.05 + 1 / $i}")" >> "$dir/loss.csv"
    i=$((i + 1))
done
cat > "$dir/sweep.csv" << 'CSV'
w,accuracy,confidence,fd,fd_floor,sampler,steps,per_class,sample_seconds
0,0.62,0.55,12.1,3.2,ddim,50,50,60
1,0.83,0.74,10.9,3.2,ddim,50,50,60
2,0.9,0.84,14.8,3.2,ddim,50,50,60
CSV

"$plot" loss "$dir/loss.csv" "$dir/loss.png" || fail "plot.sh loss exited with $?"
[ "$(png_size "$dir/loss.png")" = "960 600" ] || fail "loss.png: size '$(png_size "$dir/loss.png")', want 960 600"
"$plot" sweep "$dir/sweep.csv" "$dir/sweep.png" || fail "plot.sh sweep exited with $?"
[ "$(png_size "$dir/sweep.png")" = "1280 560" ] || fail "sweep.png: size '$(png_size "$dir/sweep.png")', want 1280 560"

# a loss log is no sweep; an unknown kind; a missing file
if msg=$("$plot" sweep "$dir/loss.csv" "$dir/bad.png" 2>&1); then fail "a loss log plotted as a sweep"; fi
case "$msg" in *'no column "w"'*) ;; *) fail "the wrong file's message: $msg" ;; esac
if msg=$("$plot" histogram "$dir/loss.csv" "$dir/bad.png" 2>&1); then fail "an unknown plot kind was accepted"; fi
case "$msg" in *histogram*) ;; *) fail "the unknown kind's message: $msg" ;; esac
if msg=$("$plot" loss "$dir/none.csv" "$dir/bad.png" 2>&1); then fail "a missing file was accepted"; fi
case "$msg" in *none.csv*) ;; *) fail "the missing file's message: $msg" ;; esac
[ ! -e "$dir/bad.png" ] || fail "a refused plot left bad.png"
[ -z "$(find "$dir" -name '.plot.*')" ] || fail "temporary files left: $(find "$dir" -name '.plot.*')"
[ $failed -eq 0 ] && echo "tools.plot: passed"
exit $failed
