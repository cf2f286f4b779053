#!/bin/sh
# Data-parallel training under mpirun, on a tiny data set (64 labelled 8x8 images) and the dli-unet at 8x8.
#   test_mpi.sh CASE NANODIFF DIST_TOOL WITH_MPI
#   match   2 processes take the steps of one process with the same global batch (8, and 7: shares 4 + 3);
#           mpirun with 1 process gives the same bits as no mpirun; rank 0 alone logs and prints
#   resume  1 -> 2 and 2 -> 1 processes, resumed halfway, match one uninterrupted process
#   dies    a process killed with SIGKILL mid-run ends the whole run, non-zero, within seconds
#   stop    SIGINT to one process stops all of them at the same step, with rank 0's checkpoint of it
#   nccl    on a GPU (skipped without one): mpirun -np 1 through NCCL matches the plain run, and with two GPUs
#           or more, 2 processes match 1
# Exit 77 (skipped) in a build without MPI or where mpirun is missing.
#
# Tolerance. Adam divides each gradient element by its own running RMS, so an element whose gradient is a
# nearly cancelling sum moves by a good part of lr in a direction that rounding decides: summing the batch in
# another order (two halves on two processes, or the same process on 2 threads instead of 1) moves single
# weights by up to ~1e-3 after 4 steps, and no per-element relative bound like 1e-6 can hold. What holds is
# the whole vector: |a - b| / |a| over all weights measured 1.7e-5 for 2 processes against 1 here, 9.6e-5 for
# one process on 2 threads against 1 thread (reduction order alone), and 7.1e-2 when a process takes the
# wrong rows of the batch's noise. With oneDNN's convolutions (whose blocking follows the batch size, so 4 + 3
# rows sum in another order than 7) the batch-7 case measured max |a - b| / max |a| = 3.7e-3 after 4 steps
# (2.4e-4 after one): 5e-3 sits above that and fourteen times below the planted bug.
# The first step's loss, computed before any weight moves, must agree to float rounding (1e-5 relative).
set -eu
case_name=$1 nanodiff=$2 tool=$3 with_mpi=$4
[ "$with_mpi" = "ON" ] || { echo "built without MPI: skipped"; exit 77; }
command -v mpirun >/dev/null || { echo "mpirun not found (Debian: openmpi-bin): skipped"; exit 77; }

tolerance=5e-3
dir=$(mktemp -d "${TMPDIR:-/tmp}/nd_mpi.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"
# One thread a process, so two processes do not fight over two cores; CI runs as root, which Open MPI refuses
# unless told; --oversubscribe lets 2 processes start where fewer cores are free; containers often forbid the
# cross-process memory reads of Open MPI's shared-memory single copy, so it copies through shared buffers.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi() { n=$1; shift; mpirun -np "$n" --oversubscribe "$@"; }
"$tool" data tiny.h5 64
train="train --data tiny.h5 --img-size 8 --quiet"

fail() { echo "FAIL: $*"; exit 1; }
# rows of a loss.csv (header excluded)
rows() { echo $(($(wc -l <"$1") - 1)); }
# the loss of the first step in a loss.csv
first_loss() { sed -n 2p "$1" | cut -d, -f3; }
same_first_loss() {
    awk -v a="$(first_loss "$1")" -v b="$(first_loss "$2")" 'BEGIN { d = a - b; if (d < 0) d = -d;
        print "first-step loss " a " vs " b; exit !(d <= 1e-5 * (a < 0 ? -a : a)) }' ||
        fail "the first step's loss differs: $1 vs $2"
}

# Starts a long 2-process run into $1 in the background (launcher: mpirun's pid) and, once both processes
# train, sets victim to rank 1's pid; a tag in the environment tells this test's processes from any others.
start_long_run() {
    tag="nd_mpi_$1_$$"
    mpi 2 -x ND_TEST_TAG="$tag" "$nanodiff" $train --batch 8 --max-steps 100000 --out "$1" >"$1.out" 2>&1 &
    launcher=$!
    victim=""
    deadline=$(($(date +%s) + 60)) # to start on a busy machine
    while [ -z "$victim" ] && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.2
        # rank 0 logs a line after each step (line-buffered): both processes are training
        [ -f "$1/loss.csv" ] && [ "$(rows "$1/loss.csv")" -ge 1 ] || continue
        for p in /proc/[0-9]*; do
            env=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null) || continue
            case "$env" in *"ND_TEST_TAG=$tag"*) ;; *) continue ;; esac
            echo "$env" | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=${p#/proc/}
        done
    done
    [ -n "$victim" ] || { kill "$launcher"; fail "rank 1 was not found training: $(cat "$1.out")"; }
}

case $case_name in
match)
    for batch in 8 7; do
        "$nanodiff" $train --batch $batch --max-steps 4 --out one$batch
        mpi 2 "$nanodiff" $train --batch $batch --max-steps 4 --out two$batch >two$batch.out
        cat two$batch.out
        [ "$(grep -c trained two$batch.out)" = 1 ] ||
            fail "expected one summary line (rank 0's), got: $(cat two$batch.out)"
        [ "$(rows two$batch/loss.csv)" = 4 ] || fail "two$batch/loss.csv: expected 4 rows from rank 0 alone"
        same_first_loss one$batch/loss.csv two$batch/loss.csv
        echo "batch $batch, 2 processes vs 1:"
        "$tool" compare one$batch/model.h5 two$batch/model.h5 $tolerance ||
            fail "2 processes differ from 1 (batch $batch)"
    done
    mpi 1 "$nanodiff" $train --batch 8 --max-steps 4 --out np1
    echo "mpirun -np 1 vs no mpirun:"
    "$tool" compare one8/model.h5 np1/model.h5 0 || fail "one process under mpirun differs from one without it"
    # fewer images than processes: refused with a message, and the run ends
    if mpi 2 "$nanodiff" $train --batch 1 --max-steps 1 --out small 2>small.err; then
        fail "--batch 1 on 2 processes ran"
    fi
    grep -q "expected --batch of at least 2" small.err ||
        fail "no message for --batch 1 on 2 processes: $(cat small.err)"
    ;;
resume)
    "$nanodiff" $train --batch 8 --max-steps 4 --out whole
    "$nanodiff" $train --batch 8 --max-steps 2 --out one_two
    mpi 2 "$nanodiff" $train --max-steps 4 --out one_two --resume
    mpi 2 "$nanodiff" $train --batch 8 --max-steps 2 --out two_one
    "$nanodiff" $train --max-steps 4 --out two_one --resume
    for run in one_two two_one; do
        [ "$(rows $run/loss.csv)" = 4 ] || fail "$run/loss.csv: expected 4 rows, got $(rows $run/loss.csv)"
        echo "$run vs uninterrupted:"
        "$tool" compare whole/model.h5 $run/model.h5 $tolerance || fail "$run differs from the uninterrupted run"
    done
    ;;
dies)
    start_long_run dies
    start=$(date +%s)
    kill -9 "$victim"
    rc=0
    wait "$launcher" || rc=$?
    took=$(($(date +%s) - start))
    cat dies.out
    echo "rank 1 (pid $victim) killed; mpirun ended after ${took} s with status $rc"
    [ "$rc" -ne 0 ] || fail "mpirun exited 0 after a process was killed"
    [ "$took" -le 10 ] || fail "mpirun took ${took} s to end after a process was killed"
    grep -q "signal 9" dies.out || fail "no message names the killed process"
    ;;
stop)
    start_long_run stop
    kill -INT "$victim"
    rc=0
    wait "$launcher" || rc=$?
    cat stop.out
    [ "$rc" -ne 0 ] || fail "mpirun exited 0 after an interrupt"
    [ "$(grep -c "^trained" stop.out)" = 1 ] || fail "rank 0 did not report the stopped run"
    # the checkpoint is the stop's step: resuming 2 steps further logs steps 1..n without a gap or repeat
    stopped=$(rows stop/loss.csv)
    "$nanodiff" $train --max-steps $((stopped + 2)) --out stop --resume
    [ "$(cut -d, -f1 stop/loss.csv | tail -n +2 | tr '\n' ' ')" = "$(seq 1 $((stopped + 2)) | tr '\n' ' ')" ] ||
        fail "steps logged after stopping at $stopped and resuming: $(cut -d, -f1 stop/loss.csv | tr '\n' ' ')"
    echo "stopped together at step $stopped; resumed to $((stopped + 2))"
    ;;
nccl)
    "$tool" gpu || { echo "no usable GPU: skipped"; exit 77; }
    gpu="--device cuda --no-tf32"
    "$nanodiff" $train $gpu --batch 8 --max-steps 4 --out gpu_one
    mpi 1 "$nanodiff" $train $gpu --batch 8 --max-steps 4 --out gpu_np1
    echo "GPU, mpirun -np 1 (NCCL) vs no mpirun:"
    "$tool" compare gpu_one/model.h5 gpu_np1/model.h5 $tolerance || fail "one GPU process under mpirun differs"
    same_first_loss gpu_one/loss.csv gpu_np1/loss.csv
    if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
        mpi 2 "$nanodiff" $train $gpu --batch 8 --max-steps 4 --out gpu_two
        echo "2 GPUs vs 1:"
        "$tool" compare gpu_one/model.h5 gpu_two/model.h5 $tolerance || fail "2 GPU processes differ from 1"
        same_first_loss gpu_one/loss.csv gpu_two/loss.csv
    fi
    ;;
*)
    echo "unknown case $case_name"
    exit 2
    ;;
esac
echo "PASS $case_name"
