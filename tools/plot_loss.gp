# The training loss of a nanodiff run (RUN_DIR/loss.csv, as train and train-clip write it: step,epoch,loss[,...])
# against the step: each step's loss and, for runs long enough, its exponential moving average over about a
# fiftieth of the run, on a log scale.
#   gnuplot -c tools/plot_loss.gp RUN_DIR/loss.csv OUT.png        (tools/plot.sh loss does this)
csv = ARG1
out = ARG2
set datafile separator ","
stats csv using "loss" nooutput
rows = STATS_records
window = rows / 50.0
keep = window < 2 ? 0 : 1.0 - 1.0 / window
set terminal pngcairo size 960,600 font ",11"
set output out
set title sprintf("training loss: %s (%d steps)", csv, rows) noenhanced
set xlabel "step"
set autoscale xfix
set ylabel "loss"
set logscale y
set grid
set key top right
ema = 0
if (window < 2) {
    plot csv using "step":"loss" with linespoints lw 2 lc rgb "#1f4e9c" title "loss of each step"
} else {
    plot csv using "step":"loss" with lines lc rgb "#b0c4de" title "loss of each step", \
         csv using "step":(ema = $0 == 0 ? column("loss") : keep * ema + (1 - keep) * column("loss")) \
             with lines lw 2 lc rgb "#1f4e9c" title sprintf("moving average (about %.0f steps)", window)
}
