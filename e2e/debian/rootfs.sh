#!/usr/bin/env bash
# Builds (once) the Debian bookworm root filesystem of the systemd scenarios
# and caches it as a tar archive:
#
#   e2e/debian/rootfs.sh [initramfs-tools|dracut]
#   -> ${KJUMP_CACHE:-/var/cache/kjump}/rootfs/<key>/rootfs.tar
#
# The argument picks the initramfs generator (default initramfs-tools).
# <key> is a hash of this script, which holds the package list and every
# configuration step, so a change to either builds a new tree and reruns
# skip debootstrap. Kernel, kjump and the initramfs are not in the archive:
# the scenario adds them to a copy for each run. Needs root (debootstrap,
# chroot). Prints only the archive's path on stdout.
set -euo pipefail

cache=${KJUMP_CACHE:-/var/cache/kjump}
mirror=${KJUMP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
die() { echo "e2e/debian/rootfs.sh: $*" >&2; exit 1; }

# systemd as init, logind (needs dbus) so `systemctl hibernate` takes the
# path a desktop takes, initramfs-tools with busybox as on a default install
# (or dracut, which replaces initramfs-tools).
generator=${1:-initramfs-tools}
case $generator in
initramfs-tools) gen_packages=initramfs-tools,busybox ;;
dracut) gen_packages=dracut ;;
*) die "unknown initramfs generator '$generator': initramfs-tools or dracut" ;;
esac
packages=systemd,systemd-sysv,udev,dbus,kmod,procps,e2fsprogs,$gen_packages

key=$({ sha256sum <"${BASH_SOURCE[0]}"; echo "$generator"; } | sha256sum | cut -c1-16)
out=$cache/rootfs/$key
if [[ -f $out/rootfs.tar ]]; then
	echo "$out/rootfs.tar"
	exit 0
fi
[[ $(id -u) == 0 ]] || die "debootstrap needs root; run as root or point KJUMP_CACHE at a cache that has $key"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap (or make deps)"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -f $out/rootfs.tar ]]; then
	echo "$out/rootfs.tar"
	exit 0
fi
tmp=$(mktemp -d "$out/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
start=$SECONDS
echo "e2e/debian/rootfs.sh: debootstrap bookworm from $mirror (a few minutes)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
	{ tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

echo kjump-vm >"$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
# Root logs in on the serial console without a password (post-mortems by hand).
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
# Timers and services that only cost boot time in a throwaway VM.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
	systemd-timesyncd.service man-db.timer dpkg-db-backup.timer getty@tty1.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# The journal persists, so both halves of a hibernation are in one journal.
mkdir -p "$root/var/log/journal"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" --numeric-owner -cf "$tmp/rootfs.tar" .
mv "$tmp/rootfs.tar" "$out/rootfs.tar"
echo "e2e/debian/rootfs.sh: built in $((SECONDS - start))s, $(du -sm "$root" | cut -f1) MiB" >&2
echo "$out/rootfs.tar"
