#!/bin/sh
# bench.sh — `make bench`: capture and restore speed of kjump images against
# the zstd CLI on the same realistic memory dump, alternating runs and
# reporting medians. Not a test: numbers depend on the machine and its load.
#
#   KJUMP_CACHE   cache root (default /var/cache/kjump); the dump and scratch
#                 files live in $KJUMP_CACHE/bench, never in the repository
#   BENCH_DUMP    ELF dump to use (default: build one with bench/mkdump.sh; it
#                 needs the VMCOREINFO note mkdump.sh adds for --exclude-free)
#   BENCH_REPEAT  runs of each command (default 5, at least 3)
set -eu
cd "$(dirname "$0")/.."
cache=${KJUMP_CACHE:-/var/cache/kjump}/bench
dump=${BENCH_DUMP:-$cache/guest-1g-vmcoreinfo.elf}
repeat=${BENCH_REPEAT:-5}
[ "$repeat" -ge 3 ] || repeat=3
threads=$(nproc)
run=$cache/run
mkdir -p "$run"
for t in zstd /usr/bin/time; do
	command -v $t >/dev/null || { echo "bench: $t is missing: apt-get install zstd time" >&2; exit 1; }
done
[ -f "$dump" ] || bench/mkdump.sh "$dump"

CGO_ENABLED=0 go build -trimpath -o "$run/" ./cmd/hibernate ./cmd/resume
cat "$dump" >/dev/null # same page-cache state for every contender

# timed NAME CMD...: run CMD, append "seconds maxrss_kb cpu_seconds" to $run/NAME.times
timed() {
	name=$1; shift
	/usr/bin/time -f "%e %M %U %S" -o "$run/$name.t" "$@" >/dev/null 2>"$run/$name.err" || {
		echo "bench: $name failed:" >&2; cat "$run/$name.err" >&2; exit 1; }
	awk '{ print $1, $2, $3 + $4 }' "$run/$name.t" >>"$run/$name.times"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$run/$1.times" | median; }

rm -f "$run"/*.times
img=$run/kjump.img
# Thread counts for the scaling table: 1, 2, doubling up to the CPUs, and
# image.MaxThreads (4), the cap whose memory ceiling the docs state.
tlist=$(awk -v n="$threads" 'BEGIN { for (t = 1; t <= n || t <= 4; t *= 2) printf "%d ", t }')
for i in $(seq "$repeat"); do
	for t in $tlist; do
		timed "kjump_create_T$t" "$run/hibernate" image create --compression zstd --from "$dump" --to "$img" --level fast --threads "$t"
		rm -f "$run/restored.mem"
		timed "kjump_restore_T$t" "$run/resume" image restore "$img" --to-file "$run/restored.mem" --threads "$t"
	done
	# The helper's defaults: free pages left out, codec auto, level fast.
	timed kjump_create_defaults "$run/hibernate" image create --from "$dump" --to "$run/kjump-defaults.img" --threads "$threads" --exclude-free
	timed kjump_create_free "$run/hibernate" image create --compression zstd --from "$dump" --to "$run/kjump-free.img" --level fast --threads "$threads" --exclude-free
	timed kjump_create_fastest "$run/hibernate" image create --compression zstd --from "$dump" --to "$run/kjump-fastest.img" --level fastest --threads "$threads" --exclude-free
	rm -f "$run/restored.mem"
	timed kjump_restore_free "$run/resume" image restore "$run/kjump-free.img" --to-file "$run/restored.mem" --threads "$threads"
	timed zstd_compress zstd -1 -T"$threads" -q -f "$dump" -o "$run/dump.zst"
	rm -f "$run/dump.out"
	timed zstd_decompress zstd -d -T"$threads" -q -f "$run/dump.zst" -o "$run/dump.out"
done
# The headline rows use all CPUs and one thread.
cp "$run/kjump_create_T$threads.times" "$run/kjump_create.times"
cp "$run/kjump_restore_T$threads.times" "$run/kjump_restore.times"
cp "$run/kjump_create_T1.times" "$run/kjump_create_1thread.times"
timed kjump_create_default "$run/hibernate" image create --compression zstd --from "$dump" --to "$run/kjump-default.img" --level default --threads "$threads"
"$run/resume" image verify "$img" >/dev/null || { echo "bench: image does not verify" >&2; exit 1; }
"$run/resume" image verify "$run/kjump-default.img" >/dev/null
"$run/resume" image verify "$run/kjump-free.img" >/dev/null
"$run/resume" image verify "$run/kjump-fastest.img" >/dev/null
"$run/resume" image verify "$run/kjump-defaults.img" >/dev/null

size() { stat -c %s "$1"; }
ram=$("$run/resume" image info "$img" --json | awk -F'[:,]' '/"ram_bytes"/ { print $2 + 0 }')
kc=$(col kjump_create 1); zc=$(col zstd_compress 1)
kr=$(col kjump_restore 1); zd=$(col zstd_decompress 1)
k1=$(col kjump_create_1thread 1); kd=$(col kjump_create_default 1)
kf=$(col kjump_create_free 1); krf=$(col kjump_restore_free 1); kx=$(col kjump_create_fastest 1); kdf=$(col kjump_create_defaults 1)
ks=$(size "$img"); zs=$(size "$run/dump.zst"); kfs=$(size "$run/kjump-free.img"); kxs=$(size "$run/kjump-fastest.img"); kdfs=$(size "$run/kjump-defaults.img"); ds=$(size "$dump"); kds=$(size "$run/kjump-default.img")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# CPU pressure from other work: with "some" near 100% no program gets all
# CPUs, wall times are inflated and thread scaling cannot show; compare the
# CPU seconds column then.
[ -r /proc/pressure/cpu ] && echo "cpu pressure: $(head -1 /proc/pressure/cpu)"
echo "dump: $dump, $ds bytes, RAM $ram bytes; $repeat alternating runs, medians"
"$run/resume" image info "$img" | grep -E 'pages:|chunks:'
echo "with --exclude-free:"
"$run/resume" image info "$run/kjump-free.img" | grep -E 'pages:|chunks:'
echo "defaults (--exclude-free, auto, fast): $("$run/resume" image info "$run/kjump-defaults.img" | grep -E 'chunks:' | sed 's/^ *//')"
awk -v kc="$kc" -v zc="$zc" -v kr="$kr" -v zd="$zd" -v k1="$k1" -v kd="$kd" -v ks="$ks" -v zs="$zs" -v ds="$ds" -v kds="$kds" -v kf="$kf" -v krf="$krf" -v kfs="$kfs" -v kfcpu="$(col kjump_create_free 3)" -v kfrss="$(col kjump_create_free 2)" \
	-v kdf="$kdf" -v kdfs="$kdfs" -v kdfcpu="$(col kjump_create_defaults 3)" -v kdfrss="$(col kjump_create_defaults 2)" \
	-v kx="$kx" -v kxs="$kxs" -v kxcpu="$(col kjump_create_fastest 3)" -v kxrss="$(col kjump_create_fastest 2)" \
	-v kcpu="$(col kjump_create 3)" -v zcpu="$(col zstd_compress 3)" -v k1cpu="$(col kjump_create_1thread 3)" -v rcpu="$(col kjump_restore 3)" -v zdcpu="$(col zstd_decompress 3)" \
	-v krss="$(col kjump_create 2)" -v k1rss="$(col kjump_create_1thread 2)" -v rrss="$(col kjump_restore 2)" -v zrss="$(col zstd_compress 2)" -v t="$threads" 'BEGIN {
	m = 1048576
	printf "%-40s %8s %8s %8s %9s %8s\n", "command", "seconds", "cpu s", "MiB/s", "out MiB", "RSS MiB"
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "hibernate image create --exclude-free -T" t, kdf, kdfcpu, ds/m/kdf, kdfs/m, kdfrss/1024
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "hibernate image create --compression zstd -T" t, kc, kcpu, ds/m/kc, ks/m, krss/1024
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "  ... --exclude-free", kf, kfcpu, ds/m/kf, kfs/m, kfrss/1024
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "  ... --exclude-free --level fastest", kx, kxcpu, ds/m/kx, kxs/m, kxrss/1024
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "zstd -1 -T" t, zc, zcpu, ds/m/zc, zs/m, zrss/1024
	printf "%-40s %8.2f %8.2f %8.0f %9.1f %8.1f\n", "hibernate image create --compression zstd -T1", k1, k1cpu, ds/m/k1, ks/m, k1rss/1024
	printf "%-40s %8.2f %8s %8.0f %9.1f\n", "  ... zstd --level default", kd, "", ds/m/kd, kds/m
	printf "%-40s %8.2f %8.2f %8.0f %9s %8.1f\n", "resume image restore -T" t, kr, rcpu, ds/m/kr, "", rrss/1024
	printf "%-40s %8.2f %8.2f %8.0f\n", "zstd -d -T" t, zd, zdcpu, ds/m/zd
	printf "%-40s %8.2f\n", "resume image restore (free excluded)", krf
	printf "defaults vs zstd -1:          %.2fx wall, %.2fx cpu (target >= 1.5x), image %.3f of zstd -1 output (target <= 1)\n", zc/kdf, zcpu/kdfcpu, kdfs/zs
	printf "zstd, every page, vs zstd -1: %.2fx wall, %.2fx cpu, image %.3f  ratio dump/image %.2f, dump/zstd %.2f\n", zc/kc, zcpu/kcpu, ks/zs, ds/ks, ds/zs
	printf "zstd with --exclude-free:     %.2fx wall, %.2fx cpu, image %.3f of zstd -1 output\n", zc/kf, zcpu/kfcpu, kfs/zs
	printf "  ... and --level fastest:    %.2fx wall, %.2fx cpu, image %.3f of zstd -1 output\n", zc/kx, zcpu/kxcpu, kxs/zs
	printf "restore speedup vs zstd -d:   %.2fx wall, %.2fx cpu (target >= 1)\n", zd/kr, zdcpu/rcpu
	printf "thread scaling create T1 -> T%d: %.2fx\n", t, k1/kc
}'

# Scaling with threads (medians): throughput of the dump's RAM and peak RSS.
# BENCH_THREADS_TSV names a copy for the charts (bench/charts.sh).
tsv=$run/threads.tsv
printf 'threads\tcreate_s\tcreate_cpu_s\tcreate_mibs\tcreate_rss_mib\trestore_s\trestore_cpu_s\trestore_mibs\trestore_rss_mib\tzstd_mibs\tzstd_d_mibs\n' >"$tsv"
for t in $tlist; do
	awk -v t="$t" -v ds="$ds" -v zc="$zc" -v zd="$zd" -v c="$(col "kjump_create_T$t" 1)" -v cc="$(col "kjump_create_T$t" 3)" -v cr="$(col "kjump_create_T$t" 2)" \
		-v r="$(col "kjump_restore_T$t" 1)" -v rc="$(col "kjump_restore_T$t" 3)" -v rr="$(col "kjump_restore_T$t" 2)" 'BEGIN {
		m = 1048576
		printf "%d\t%.2f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.0f\t%.1f\t%.0f\t%.0f\n", t, c, cc, ds/m/c, cr/1024, r, rc, ds/m/r, rr/1024, ds/m/zc, ds/m/zd
	}' >>"$tsv"
done
echo "threads (medians; MiB/s of dump RAM; RSS = peak resident set):"
awk -F'\t' 'NR == 1 { printf "%7s %9s %8s %9s %8s %10s %8s %9s %8s\n", "threads", "create s", "cpu s", "MiB/s", "RSS MiB", "restore s", "cpu s", "MiB/s", "RSS MiB"; next }
	{ printf "%7s %9s %8s %9s %8s %10s %8s %9s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$tsv"
[ -z "${BENCH_THREADS_TSV:-}" ] || { mkdir -p "$(dirname "$BENCH_THREADS_TSV")"; cp "$tsv" "$BENCH_THREADS_TSV"; }
rm -f "$run/restored.mem" "$run/dump.out"
