# bench/chart.gp - draw build/bench/results.tsv (written by bench/run.sh) as
# a PNG: one bar chart per column, one bar per configuration.
#
#	gnuplot -e "infile='build/bench/results.tsv'; outfile='bench.png'; \
#		subtitle='256 MiB corpus'" bench/chart.gp
#
# bench/run.sh calls it when BENCH_PNG=PATH is set.  "-" in the table (not
# measured) is a missing bar.

if (!exists("infile")) infile = 'build/bench/results.tsv'
if (!exists("outfile")) outfile = 'build/bench/results.png'
if (!exists("subtitle")) subtitle = ''

set terminal pngcairo size 1400,900 font ",10" noenhanced
set output outfile
set datafile separator "\t"
set datafile missing "-"
set key noautotitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.8
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set xtics rotate by -30 scale 0
set format y "%.0f"

set multiplot layout 2,3 margins 0.05, 0.98, 0.1, 0.9 spacing 0.06, 0.2 title "fusezram benchmark".(subtitle eq '' ? '' : ': '.subtitle)
set title "sequential write, MB/s (dd bs=1M direct)"
plot infile using 2:xtic(1) every ::1 linecolor rgb "#4477aa"
set title "sequential read, MB/s (dd bs=1M direct)"
plot infile using 3:xtic(1) every ::1 linecolor rgb "#66ccee"
set title "random read, IOPS (fio 4k, qd 32 x 2)"
plot infile using 4:xtic(1) every ::1 linecolor rgb "#228833"
set title "random write, IOPS (fio 4k, qd 32 x 2)"
plot infile using 5:xtic(1) every ::1 linecolor rgb "#ccbb44"
set format y "%.1f"
set title "ratio, orig / mem_used_total"
plot infile using 6:xtic(1) every ::1 linecolor rgb "#ee6677"
set title "ratio, corpus / RSS growth"
plot infile using 7:xtic(1) every ::1 linecolor rgb "#aa3377"
unset multiplot
