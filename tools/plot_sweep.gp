# A guidance sweep (scripts/guidance_sweep.sh writes DIR/sweep.csv: w,accuracy,confidence,fd,fd_floor,...): left,
# the trade-off curve, classifier accuracy of the samples against their Fréchet distance, each point labelled by
# its w, the dashed line the real-vs-real FD floor; right, accuracy and FD against w.
#   gnuplot -c tools/plot_sweep.gp DIR/sweep.csv OUT.png        (tools/plot.sh sweep does this)
csv = ARG1
out = ARG2
set datafile separator ","
# ranges set from the data, padded, so that a sweep of one w or of equal accuracies still has room
stats csv using "w" name "W" nooutput
stats csv using (100 * column("accuracy")) name "A" nooutput
stats csv using "fd" name "F" nooutput
stats csv using "fd_floor" name "FLOOR" nooutput
pad_w = W_max - W_min < 1 ? 0.5 : 0.05 * (W_max - W_min)
pad_a = A_max - A_min < 2 ? 2 : 0.1 * (A_max - A_min)
acc_lo = A_min - pad_a < 0 ? 0 : A_min - pad_a
acc_hi = A_max + pad_a > 100 ? 100 : A_max + pad_a
fd_hi = 1.15 * (F_max > FLOOR_max ? F_max : FLOOR_max)

set terminal pngcairo size 1280,560 font ",11"
set output out
set multiplot layout 1,2 title sprintf("guidance sweep: %s", csv) noenhanced
set grid
set key off
set xlabel "FD to real test images (lower is better)"
set ylabel "classified as requested (%)"
set xrange [0:fd_hi] # from 0, so the floor shows how far the samples are from it
set yrange [acc_lo:acc_hi]
set arrow 1 from FLOOR_mean, graph 0 to FLOOR_mean, graph 1 nohead dt 2 lc rgb "#808080"
set label 1 "floor" at FLOOR_mean, graph 0.03 offset 0.5, 0 left tc rgb "#808080"
plot csv using "fd":(100 * column("accuracy")) with linespoints pt 7 lw 2 lc rgb "#1f4e9c", \
     csv using "fd":(100 * column("accuracy")):(sprintf("w = %g", column("w"))) with labels offset 1.2,0.8 left
unset arrow 1
unset label 1

set key top center horizontal
set xlabel "guidance weight w"
set ylabel "classified as requested (%)" tc rgb "#1f4e9c"
set y2label "FD" tc rgb "#c0392b"
set ytics nomirror tc rgb "#1f4e9c"
set y2tics tc rgb "#c0392b"
set xrange [W_min - pad_w:W_max + pad_w]
set yrange [acc_lo:acc_hi + 0.12 * (acc_hi - acc_lo)] # room for the key
set y2range [0:fd_hi]
plot csv using "w":(100 * column("accuracy")) axes x1y1 with linespoints pt 7 lw 2 lc rgb "#1f4e9c" \
         title "accuracy", \
     csv using "w":"fd" axes x1y2 with linespoints pt 5 lw 2 lc rgb "#c0392b" title "FD", \
     csv using "w":"fd_floor" axes x1y2 with lines dt 2 lc rgb "#808080" title "FD floor"
unset multiplot
