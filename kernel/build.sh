#!/usr/bin/env bash
# Builds the kjump test kernel (bzImage) from Debian's linux-source-VERSION
# package, unpatched, configured as x86_64_defconfig + kvm_guest.config +
# kernel/kjump.config, and caches it:
#
#   ${KJUMP_CACHE:-/var/cache/kjump}/kernel/<key>/bzImage   (+ config, System.map, build.log)
#
# key = sha256 of the source package name and version, this script, the config
# fragment and the compiler version, so any change to an input gives a new
# build and an unchanged input never rebuilds.
#
# usage: kernel/build.sh [VERSION]     VERSION defaults to 6.1 (7.3 comes from
#                                     trixie-backports: apt-get install linux-source-7.3)
# Prints only the bzImage path on stdout; progress goes to stderr.
set -euo pipefail

version=${1:-6.1}
here=$(cd "$(dirname "$0")" && pwd)
cache=${KJUMP_CACHE:-/var/cache/kjump}
pkg=linux-source-$version
fragment=$here/kjump.config

die() { echo "kernel/build.sh: $*" >&2; exit 1; }

pkgver=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null | sed -n 's/^install ok installed //p')
[[ -n $pkgver ]] || die "package $pkg is not installed (apt-get install $pkg; .ci/deps.sh installs 6.1)"
tarball=/usr/src/$pkg.tar.xz
[[ -f $tarball ]] || die "$tarball missing although $pkg $pkgver is installed"

key=$({
	echo "$pkg $pkgver"
	gcc --version | head -1
	sha256sum "$here/build.sh" "$fragment" | cut -d' ' -f1
} | sha256sum | cut -c1-64)
out=$cache/kernel/$key
if [[ -f $out/bzImage ]]; then
	echo "$out/bzImage"
	exit 0
fi

mkdir -p "$out"
# Parallel test runs may ask for the same kernel: one builds, the others wait.
exec 9>"$out/.lock"
flock 9
if [[ -f $out/bzImage ]]; then
	echo "$out/bzImage"
	exit 0
fi

log=$out/build.log
: >"$log"
echo "kernel/build.sh: building $pkg $pkgver into $out (log: $log)" >&2
start=$SECONDS

# One pristine, extracted source tree per package version, shared by all
# configurations; builds go out of tree (O=) so the source stays clean.
src=$cache/src/$pkg-$pkgver
mkdir -p "$cache/src"
(
	flock 8 # builds of other configurations share this tree
	if [[ ! -f $src/.extracted ]]; then
		rm -rf "$src" "$src.tmp"
		mkdir -p "$src.tmp"
		tar -xf "$tarball" -C "$src.tmp" >>"$log" 2>&1 || { tail -20 "$log" >&2; die "extracting $tarball failed"; }
		top=$(find "$src.tmp" -mindepth 1 -maxdepth 1 -type d)
		[[ $(wc -l <<<"$top") == 1 ]] || die "$tarball does not hold a single top directory"
		mv "$top" "$src"
		rmdir "$src.tmp"
		touch "$src/.extracted"
	fi
) 8>"$cache/src/.lock-$pkg-$pkgver"

obj=$out/obj
rm -rf "$obj"
mkdir -p "$obj"
# Fixed build identity so the same inputs give the same image.
export KBUILD_BUILD_TIMESTAMP="$pkg $pkgver" KBUILD_BUILD_USER=kjump KBUILD_BUILD_HOST=kjump
mk() { make -C "$src" O="$obj" -j"$(nproc)" "$@" >>"$log" 2>&1; }
fail() {
	echo "kernel/build.sh: $1 failed; last lines of $log:" >&2
	tail -40 "$log" >&2
	exit 1
}

mk x86_64_defconfig || fail "make x86_64_defconfig"
(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" .config \
	"$src/kernel/configs/kvm_guest.config" "$fragment") >>"$log" 2>&1 || fail "merge_config.sh"
mk olddefconfig || fail "make olddefconfig"

# Kconfig silently drops options whose dependencies are missing; an option
# kjump relies on must not vanish that way.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment" | while read -r line; do
	grep -qxF "$line" "$obj/.config" || echo "  $line"
done)
[[ -z $missing ]] || die "options from kernel/kjump.config not in the final .config:
$missing"

mk bzImage || fail "make bzImage"

cp "$obj/.config" "$out/config"
cp "$obj/System.map" "$out/System.map"
cp "$obj/arch/x86/boot/bzImage" "$out/bzImage.tmp"
mv "$out/bzImage.tmp" "$out/bzImage"
rm -rf "$obj"
echo "kernel/build.sh: built $out/bzImage in $((SECONDS - start)) s" >&2
echo "$out/bzImage"
