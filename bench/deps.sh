#!/bin/sh
# deps.sh — Debian packages the benchmarks (make bench, make bench-vm) need
# beyond the test dependencies (.ci/deps.sh): gnuplot for the charts, GNU
# time for peak RSS, zstd as the reference compressor, lzop and lz4 for the
# kernel codecs in the real-hardware projection (bench/projection). Idempotent.
set -eu
missing=
for p in gnuplot-nox time zstd lzop lz4; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
