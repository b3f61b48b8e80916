#!/bin/sh
# charts.sh — PNG charts for docs/benchmarks.md from the benchmarks' tables:
#
#   bench/charts.sh vm RESULTS.tsv [OUT.png]        (bench/vm, make bench-vm)
#   bench/charts.sh threads THREADS.tsv [OUT.png]   (bench/bench.sh, make bench)
#
# Default outputs: docs/img/bench-vm.png, docs/img/bench-threads.png.
set -eu
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { echo "charts: gnuplot is missing: bench/deps.sh (apt-get install gnuplot-nox)" >&2; exit 1; }
kind=${1:?usage: charts.sh vm|threads TSV [OUT.png]}
tsv=${2:?usage: charts.sh vm|threads TSV [OUT.png]}
[ -r "$tsv" ] || { echo "charts: cannot read $tsv: run make bench-vm or make bench first" >&2; exit 1; }
mkdir -p docs/img
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# med METHOD COLUMN: median of a column of results.tsv for one method.
med() {
	awk -F'\t' -v m="$1" -v c="$2" 'NR > 1 && $1 == m { print $c }' "$tsv" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

case $kind in
vm)
	out=${3:-docs/img/bench-vm.png}
	methods=$(awk -F'\t' 'NR > 1 && !seen[$1]++ { print $1 }' "$tsv")
	n=$(awk -F'\t' 'NR > 1 { c[$1]++ } END { for (m in c) { print c[m]; exit } }' "$tsv")
	for m in $methods; do
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$(med "$m" 4)" "$(med "$m" 6)" \
			"$(awk -F'\t' -v m="$m" 'NR > 1 && $1 == m { print $4 + $6 }' "$tsv" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
			"$(med "$m" 5)" "$(med "$m" 7)" "$(med "$m" 9)"
	done >"$tmp/med.tsv"
	gnuplot <<GP
set terminal pngcairo size 1500,520 font "sans,11"
set output "$out"
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics rotate by -20 font "sans,10"
set multiplot layout 1,3 title "Same 2 GiB, 2-CPU QEMU VM (TCG), 512 MiB anonymous + 256 MiB page cache: medians of $n cycles per method"
set title "Hibernate and resume (s)"
set yrange [0:*]
set offsets 0,0,graph 0.18,0
plot "$tmp/med.tsv" using 2:xtic(1) title "power off", '' using 3 title "boot to workload", '' using 4 title "total"
set title "Image on disk (MiB)"
unset key
plot "$tmp/med.tsv" using 5:xtic(1) lc rgb "#4477aa", '' using 0:5:(sprintf("%.0f", \$5)) with labels offset 0,0.7 notitle
set title "Re-read of the 256 MiB of cached files after resume (s)"
plot "$tmp/med.tsv" using 6:xtic(1) lc rgb "#cc6677", '' using 0:6:(\$7 > 0 ? sprintf("%.2f s\n%.0f MiB from disk", \$6, \$7) : sprintf("%.2f s", \$6)) with labels offset 0,1.3 notitle
unset multiplot
GP
	;;
threads)
	out=${3:-docs/img/bench-threads.png}
	gnuplot <<GP
set terminal pngcairo size 1200,480 font "sans,11"
set output "$out"
set datafile separator "\t"
set key autotitle columnhead top left
set grid
set xlabel "threads (--threads)"
set xtics 1
set xrange [0.8:*]
set multiplot layout 1,2 title "Image pipeline on the host: 1 GiB guest memory dump, medians"
set title "Throughput (MiB/s of dump RAM)"
set yrange [0:*]
set offsets 0,0,graph 0.18,0
plot "$tsv" using 1:4 with linespoints lw 2 pt 7 title "hibernate image create", \
     "$tsv" using 1:8 with linespoints lw 2 pt 5 title "resume image restore", \
     "$tsv" using 1:10 with lines dt 2 lw 2 title "zstd -1 -T(nproc)", \
     "$tsv" using 1:11 with lines dt 3 lw 2 title "zstd -d -T(nproc)"
set title "Peak RSS (MiB)"
plot "$tsv" using 1:5 with linespoints lw 2 pt 7 title "create", \
     "$tsv" using 1:9 with linespoints lw 2 pt 5 title "restore", \
     100 with lines dt 2 lc rgb "red" title "100 MiB ceiling (issue 2)"
unset multiplot
GP
	;;
*) echo "charts: unknown chart $kind (vm or threads)" >&2; exit 1 ;;
esac
echo "charts: wrote $out"
