#!/usr/bin/env bash
# The .deb round trip in a Debian chroot (never on this host's root):
# dpkg -i runs the maintainer scripts for real ('hibernate prepare' builds
# the helper initramfs for the helper kernel placed in the chroot), the
# commands and man pages work, and dpkg -r leaves every file outside
# dpkg's own database and logs exactly as it was.
#
#   packaging/test-deb.sh [HELPER_BZIMAGE]
#
# The chroot is a debootstrapped Debian 12 minbase, cached as a tarball in
# $KJUMP_CACHE/chroot/. Needs root, debootstrap, unshare.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${KJUMP_CACHE:-/var/cache/kjump}/chroot
tarball=$cache/bookworm-minbase.tar
helper=${1:-}
say() { echo "test-deb: $*"; }
die() { echo "test-deb: FAIL: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (chroot, dpkg)"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -f $tarball ]]; then
	command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap (make deps)"
	say "debootstrapping Debian 12 minbase into the cache (once)"
	tmp=$(mktemp -d "$cache/root.XXXXXX")
	debootstrap --variant=minbase bookworm "$tmp" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
		{ rm -rf "$tmp"; die "debootstrap failed, see $cache/debootstrap.log"; }
	tar -C "$tmp" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$tmp"
fi
flock -u 9

deb=$(make -s deb)
root=$(mktemp -d /tmp/kjump-chroot.XXXXXX)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$tarball"
cp "$deb" "$root/tmp/kjump.deb"
if [[ -n $helper ]]; then
	mkdir -p "$root/boot/kjump"
	cp "$helper" "$root/boot/kjump/helper.bzImage"
fi

# Everything dpkg does not own by design: its database, logs, caches.
snapshot() {
	(cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
		-o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache \) -prune -o -printf '%M %u %s %p %l\n' | sort)
}
inchroot() { unshare -m sh -c "mount -t proc proc '$root/proc' && chroot '$root' /bin/sh -c '$1'"; }

before=$(snapshot)
say "dpkg -i $(basename "$deb")"
inchroot 'dpkg -i /tmp/kjump.deb' 2>&1 | sed 's/^/  /'
inchroot 'dpkg -s kjump | grep -q "^Status: install ok installed"' || die "kjump is not installed after dpkg -i"
inchroot 'hibernate --help >/dev/null 2>&1; hibernate check >/tmp/check.out 2>&1; echo "check rc=$?"; cat /tmp/check.out' | sed 's/^/  /'
inchroot 'test -x /usr/sbin/hibernate && test -x /usr/sbin/resume && test -f /usr/share/man/man8/hibernate.8.gz && test -f /usr/share/man/man8/resume.8.gz && test -f /usr/share/man/man5/kjump.conf.5.gz && test -f /usr/share/doc/kjump/examples/kjump.conf && test -f /usr/share/bash-completion/completions/hibernate && test -f /usr/share/zsh/vendor-completions/_resume && test -f /usr/lib/systemd/sleep.conf.d/kjump.conf && test -f /usr/lib/initcpio/install/kjump' ||
	die "installed files missing"
if [[ -n $helper ]]; then
	[[ -s $root/boot/kjump/helper.cpio.gz && -s $root/boot/kjump/helper.cpio.gz.stamp ]] || die "postinst did not run 'hibernate prepare'"
	say "postinst built /boot/kjump/helper.cpio.gz ($(stat -c %s "$root/boot/kjump/helper.cpio.gz") bytes)"
	inchroot 'hibernate prepare' | grep -q "is current" || die "'hibernate prepare' after install is not current"
fi
# postinst enables every unit with an [Install] section, where its
# WantedBy= says (as 'hibernate setup' does).
for u in $(packaging/install.sh units); do
	compgen -G "$root/etc/systemd/system/*.wants/$u" >/dev/null || die "postinst did not enable $u"
done
say "postinst enabled $(packaging/install.sh units | tr '\n' ' ')"
during=$(snapshot)
say "$(diff <(echo "$before") <(echo "$during") | grep -c '^>') paths added by the package"

say "dpkg -r kjump"
inchroot 'dpkg -r kjump' 2>&1 | sed 's/^/  /'
inchroot 'dpkg -s kjump 2>/dev/null | grep -q "^Status: install ok installed"' && die "kjump still installed after dpkg -r"
after=$(snapshot)
if ! diff <(echo "$before") <(echo "$after") >"$root/tmp/diff"; then
	cat "$root/tmp/diff" >&2
	die "dpkg -r left the chroot different from before dpkg -i (diff above)"
fi
say "PASS: dpkg -i / dpkg -r round trip leaves the system as it was ($(echo "$before" | wc -l) paths compared)"
