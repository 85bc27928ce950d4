# bench/plot.gp - the benchmark plots, run by bench/run in the results
# directory (reads throughput.dat, latency.dat, sweep.dat written by
# bench/report.py; writes throughput.png, latency.png, sweep.png).
set terminal pngcairo size 900,480 font ",10" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set logscale y
set format y "%.0s%c"

set output "throughput.png"
set title "Throughput (higher is better; log scale)"
set ylabel "per second"
plot "throughput.dat" using 2:xtic(1) title "mcpgw" lc rgb "#1f77b4", \
     "" using 3 title "Node ws" lc rgb "#ff7f0e", \
     "" using 4 title "raw TCP echo" lc rgb "#7f7f7f"

set output "latency.png"
set title "Latency (lower is better; log scale)"
set ylabel "microseconds"
set format y "%g"
plot "latency.dat" using 2:xtic(1) title "p50" lc rgb "#2ca02c", \
     "" using 3 title "p99" lc rgb "#d62728", \
     "" using 4 title "p99.9" lc rgb "#9467bd"

stats "sweep.dat" using 1 nooutput
if (STATS_records > 1) {
    set output "sweep.png"
    set style data linespoints
    set title "Ping: throughput vs p99 latency as in-flight requests grow (1, 4, 16, 64 per connection)"
    set xlabel "messages/s"
    set ylabel "p99 latency (us)"
    set logscale xy
    set format x "%.0s%c"
    set key top left
    plot "sweep.dat" using 2:3 title "mcpgw" lw 2 pt 7 lc rgb "#1f77b4", \
         "" using 4:5 title "Node ws" lw 2 pt 5 lc rgb "#ff7f0e", \
         "" using 6:7 title "raw TCP echo" lw 2 pt 9 lc rgb "#7f7f7f"
}
