#!/usr/bin/env bash
# make deb: out/kjump_VERSION_amd64.deb from a staged 'make install'
# (DESTDIR) plus the control files in packaging/debian/. Prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-0.1.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short HEAD)}
stage=$(mktemp -d out/deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage PREFIX=/usr packaging/install.sh install >/dev/null
chmod 755 "$stage"
gzip -9n "$stage"/usr/share/man/man*/*
mkdir -p "$stage/DEBIAN"
# Units the package enables (those with an [Install] section).
units=$(packaging/install.sh units | tr "\n" " ")
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control >"$stage/DEBIAN/control"
for s in postinst postrm; do
	sed "s/@UNITS@/$units/" "packaging/debian/$s" >"$stage/DEBIAN/$s"
	chmod 755 "$stage/DEBIAN/$s"
done
cp packaging/debian/triggers "$stage/DEBIAN/triggers"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
mkdir -p out
deb=out/kjump_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
