#!/usr/bin/env bash
# Builds a distribution kernel for the VM scenarios the way kernel/distro.sh
# builds one for a user's machine: Debian's linux-source-VERSION with Debian's
# own config for that version (from the linux-image-VERSION-amd64 package)
# plus KEXEC_JUMP, drivers as modules, trimmed with localmodconfig to the
# modules the VMs use (kernel/distro-vm.modules) so it fits CI. Cached:
#
#   ${KJUMP_CACHE:-/var/cache/kjump}/distro/<key>/vmlinuz   (+ config, lib/modules/<release>/)
#
# key = sha256 of the source and config package versions, these scripts, the
# module list and the compiler: a changed input builds anew.
#
# usage: kernel/distro-vm.sh [VERSION]   VERSION defaults to 6.12 (Debian 13's)
# Prints only the vmlinuz path on stdout; progress goes to stderr.
set -euo pipefail

version=${1:-6.12}
here=$(cd "$(dirname "$0")" && pwd)
cache=${KJUMP_CACHE:-/var/cache/kjump}
src_pkg=linux-source-$version
meta=linux-image-$version-amd64
modules=$here/distro-vm.modules

die() { echo "kernel/distro-vm.sh: $*" >&2; exit 1; }

srcver=$(dpkg-query -W -f='${Status} ${Version}' "$src_pkg" 2>/dev/null | sed -n 's/^install ok installed //p')
[[ -n $srcver ]] || die "package $src_pkg is not installed (apt-get install $src_pkg; .ci/deps.sh installs it)"
image() { apt-cache depends "$meta" 2>/dev/null | sed -n "s/^ *Depends: \(linux-image-$version[.0-9]*+.*-amd64\)\$/\1/p" | head -1; }
img=$(image)
if [[ -z $img ]]; then
	apt-get update -q >&2 || true
	img=$(image)
fi
[[ -n $img ]] || die "cannot tell which package $meta depends on (apt-get update?)"
imgver=$(apt-cache show --no-all-versions "$img" | sed -n 's/^Version: //p' | head -1)

key=$({
	echo "$src_pkg $srcver $img $imgver"
	gcc --version | head -1
	sha256sum "$here/distro.sh" "$here/distro-vm.sh" "$modules" | cut -d' ' -f1
} | sha256sum | cut -c1-64)
out=$cache/distro/$key
done_() { [[ -f $out/vmlinuz && -f $out/.complete ]]; }
if done_; then
	echo "$out/vmlinuz"
	exit 0
fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if done_; then
	echo "$out/vmlinuz"
	exit 0
fi

work=$out/work
rm -rf "$work"
mkdir -p "$work/pkg"
echo "kernel/distro-vm.sh: building $src_pkg $srcver with $img's config into $out" >&2
(cd "$work/pkg" && apt-get download -q "$img=$imgver") >&2 || die "apt-get download $img=$imgver failed"
dpkg-deb --fsys-tarfile "$work"/pkg/*.deb | tar -x -C "$work/pkg" ./boot/ || die "no /boot in $img"
config=$(ls "$work"/pkg/boot/config-*)
"$here/distro.sh" --source "$version" --config "$config" --modules "$modules" \
	--out "$work" --tree "$out" >/dev/null || die "kernel/distro.sh failed (log: $work/build.log)"
cp "$work/build.log" "$out/build.log"
rm -rf "$work"
touch "$out/.complete"
echo "$out/vmlinuz"
