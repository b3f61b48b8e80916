#!/usr/bin/env bash
# Fetches Debian's stock kernel image (the one linux-image-amd64 currently
# depends on) and caches its vmlinuz:
#
#   ${KJUMP_CACHE:-/var/cache/kjump}/stock/<package>_<version>/vmlinuz   (+ config)
#   .../lib/modules/<release>/   its modules, with modules.dep from depmod
#
# Scenarios use it as a kernel *without* CONFIG_KEXEC_JUMP, and as the NFS
# server of nfs-checkpoint (nfsd and virtio-net are modules: scenarios put
# the ones they need, in modules.dep order, into their initramfs).
# Prints only the vmlinuz path on stdout.
set -euo pipefail

cache=${KJUMP_CACHE:-/var/cache/kjump}
die() { echo "kernel/stock.sh: $*" >&2; exit 1; }

current() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1; }
pkg=$(current)
if [[ -z $pkg ]]; then # fresh machine: no package lists yet
	apt-get update -q >&2 || true
	pkg=$(current)
fi
[[ -n $pkg ]] || die "cannot tell which package linux-image-amd64 depends on (apt-get update?)"
ver=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p' | head -1)
[[ -n $ver ]] || die "no version for $pkg in apt-cache"

out=$cache/stock/${pkg}_$ver
# Caches made before the modules were kept have only the vmlinuz: fetch again.
cached() { [[ -f $out/vmlinuz && -f $out/lib/modules/.complete ]]; }
if cached; then
	echo "$out/vmlinuz"
	exit 0
fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if cached; then
	echo "$out/vmlinuz"
	exit 0
fi

tmp=$(mktemp -d "$out/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "kernel/stock.sh: downloading $pkg $ver" >&2
(cd "$tmp" && apt-get download -q "$pkg=$ver") >&2 || die "apt-get download $pkg=$ver failed"
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
cp "$tmp"/x/boot/config-* "$out/config"
# The package leaves modules.dep to its postinst.
rel=$(basename "$tmp"/x/lib/modules/*)
depmod -b "$tmp/x" "$rel" || die "depmod for $rel failed (apt-get install kmod)"
rm -rf "$out/lib"
mkdir -p "$out/lib/modules"
mv "$tmp/x/lib/modules/$rel" "$out/lib/modules/$rel"
touch "$out/lib/modules/.complete"
if [[ ! -f $out/vmlinuz ]]; then
	cp "$tmp"/x/boot/vmlinuz-* "$out/vmlinuz.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
fi
echo "$out/vmlinuz"
