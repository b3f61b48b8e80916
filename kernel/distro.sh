#!/usr/bin/env bash
# Builds the running Debian release's own kernel with CONFIG_KEXEC_JUMP=y, as
# installable .deb packages, for distributions whose stock kernel leaves it
# unset (Debian 12/13; openSUSE/SLE take the same config change, see
# docs/setup.md).
#
# The kernel is Debian's unpatched linux-source-X.Y, configured with the
# distribution's own config (/boot/config-$(uname -r) by default) plus
# KEXEC_JUMP and what it depends on, nothing else changed except what a build
# outside Debian's infrastructure must change (Debian's signing certificates,
# which only Debian has) and, unless --debug-info, no debug info (it triples
# build time and disk space and only the -dbg package uses it).
#
# usage: kernel/distro.sh [options]
#   --source X.Y       linux-source-X.Y to build (default: the running kernel's X.Y)
#   --config FILE      base config (default: /boot/config-$(uname -r))
#   --localmodconfig   keep only the modules loaded now (lsmod), or those listed in
#   --modules FILE       FILE (lsmod output of the target machine); much faster builds
#   --debug-info       keep the distribution's debug info settings
#   --out DIR          where the .debs go (default: ./kjump-kernel)
#   --config-only      stop after writing DIR/config (prints its path)
#   --tree TREE        instead of .debs, install TREE/vmlinuz, TREE/config and
#                      TREE/lib/modules/<release>/ (with modules.dep): for VMs
#   --jobs N           parallel jobs (default: nproc)
#
# Needs: linux-source-X.Y, build-essential, bc, bison, flex, libssl-dev,
# libelf-dev, dpkg-dev, rsync, kmod, cpio, and for .debs debhelper (6.12's
# bindeb-pkg declares debhelper-compat; apt-get install ...).
# Install the result with: apt install ./DIR/linux-image-*.deb
set -euo pipefail

die() { echo "kernel/distro.sh: $*" >&2; exit 2; }

release=$(uname -r)
version=
config=/boot/config-$release
localmod=
modules=
debug=
out=$PWD/kjump-kernel
config_only=
tree=
jobs=$(nproc)
while (($#)); do
	case $1 in
	--source) version=${2:?--source needs X.Y}; shift ;;
	--config) config=${2:?--config needs a file}; shift ;;
	--localmodconfig) localmod=1 ;;
	--modules) modules=${2:?--modules needs a file}; localmod=1; shift ;;
	--debug-info) debug=1 ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--config-only) config_only=1 ;;
	--tree) tree=${2:?--tree needs a directory}; shift ;;
	--jobs) jobs=${2:?--jobs needs a number}; shift ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

# The running kernel's X.Y (6.1.0-28-amd64 -> 6.1) unless given.
[[ -n $version ]] || version=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$release")
pkg=linux-source-$version
tarball=/usr/src/$pkg.tar.xz
[[ -f $tarball ]] || die "$tarball missing: apt-get install $pkg (on Debian 12 for 6.1; 13 for 6.12; newer ones from <release>-backports)"
[[ -f $config ]] || die "no base config $config: pass the distribution's config with --config FILE (it is /boot/config-<release> in the linux-image package)"
if [[ -n $modules ]]; then
	[[ -f $modules ]] || die "--modules $modules: no such file (write it with lsmod > FILE on the target machine)"
	modules=$(realpath "$modules") # make runs in the source tree
fi
pkgver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo unknown)

# For .debs, every missing build package at once, before the build: 6.12's
# bindeb-pkg checks its own build dependencies (debhelper-compat) only after
# the configuration step, and a full build would fail there.
if [[ -z $tree && -z $config_only ]]; then
	missing=()
	for p in build-essential bc bison flex libssl-dev libelf-dev dpkg-dev rsync kmod cpio debhelper; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) || die "missing build packages: apt-get install ${missing[*]}"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/build
src=$work/$pkg
obj=$work/obj
log=$out/build.log
: >"$log"
start=$SECONDS
echo "kernel/distro.sh: $pkg $pkgver with $config into $out (log: $log)" >&2

if [[ ! -f $src/.extracted ]]; then
	rm -rf "$src"
	mkdir -p "$work"
	tar -xf "$tarball" -C "$work" >>"$log" 2>&1 || die "extracting $tarball failed (see $log)"
	touch "$src/.extracted"
fi
rm -rf "$obj"
mkdir -p "$obj"
cp "$config" "$obj/.config"

mk() { make -C "$src" O="$obj" -j"$jobs" "$@" >>"$log" 2>&1 || { tail -40 "$log" >&2; die "make $* failed"; }; }
cfg() { "$src/scripts/config" --file "$obj/.config" "$@"; }

# KEXEC_JUMP depends on KEXEC (kexec_load: kexec_file_load cannot preserve
# context) and HIBERNATION (it reuses the freeze/restore device callbacks).
cfg --enable KEXEC --enable HIBERNATION --enable KEXEC_JUMP
# Debian's config names certificate files that only Debian's build has; an
# empty list builds a kernel that trusts the key the build itself generates.
cfg --set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS ""
cfg --set-str LOCALVERSION "-kjump"
if [[ -z $debug ]]; then
	cfg --disable DEBUG_INFO --disable DEBUG_INFO_DWARF4 --disable DEBUG_INFO_DWARF5 \
		--disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable DEBUG_INFO_BTF --enable DEBUG_INFO_NONE
fi
if [[ -n $localmod ]]; then
	if [[ -n $modules ]]; then
		mk LSMOD="$modules" localmodconfig </dev/null
	else
		mk localmodconfig </dev/null
	fi
fi
mk olddefconfig

# Kconfig drops an option whose dependencies are missing without a word.
for opt in KEXEC KEXEC_JUMP HIBERNATION; do
	grep -qx "CONFIG_$opt=y" "$obj/.config" || die "CONFIG_$opt=y did not survive olddefconfig (its dependencies: see $src for 'config $opt')"
done
cp "$obj/.config" "$out/config"
if [[ -n $config_only ]]; then
	echo "$out/config"
	exit 0
fi

if [[ -n $tree ]]; then
	mk bzImage modules
	mkdir -p "$tree"
	rm -rf "$tree/lib"
	mk INSTALL_MOD_PATH="$tree" INSTALL_MOD_STRIP=1 modules_install
	rel=$(cat "$obj/include/config/kernel.release")
	depmod -b "$tree" "$rel" || die "depmod for $rel failed (apt-get install kmod)"
	rm -f "$tree/lib/modules/$rel/build" "$tree/lib/modules/$rel/source"
	cp "$obj/.config" "$tree/config"
	cp "$obj/arch/x86/boot/bzImage" "$tree/vmlinuz.tmp"
	mv "$tree/vmlinuz.tmp" "$tree/vmlinuz"
	echo "kernel/distro.sh: built $rel in $((SECONDS - start)) s" >&2
	echo "$tree/vmlinuz"
	exit 0
fi

# bindeb-pkg writes the packages next to the object tree, i.e. into $work.
rm -f "$work"/*.deb
mk KDEB_PKGVERSION="$pkgver+kjump1" bindeb-pkg
debs=("$work"/*.deb)
[[ -f ${debs[0]} ]] || die "bindeb-pkg produced no .deb (see $log)"
mv "${debs[@]}" "$out/"
du -sh "$work" | cut -f1 | xargs echo "kernel/distro.sh: build tree size" >&2
echo "kernel/distro.sh: built in $((SECONDS - start)) s:" >&2
ls -1 "$out"/*.deb
