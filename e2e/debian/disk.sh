#!/usr/bin/env bash
# Builds (once) a bootable disk image of the Debian bookworm system of the
# systemd scenarios, for machines that boot like a real one (no -kernel):
#
#   e2e/debian/disk.sh
#   -> ${KJUMP_CACHE:-/var/cache/kjump}/disk/<key>/disk.raw
#
# An MBR partition table with one bootable ext4 partition (label kjroot)
# holding e2e/debian/rootfs.sh's tree plus GRUB for BIOS (grub-pc, installed
# into the MBR gap with grub-install inside the chroot), its menu on the
# serial console. No kernel: the scenario installs the test kernel into a
# copy of the image (vm.InstallIntoDisk) and runs update-grub there, so the
# kernel and kjump can change without rebuilding this. <key> hashes this
# script and the root file system archive's key. Needs root (loop devices,
# mount, chroot) and deb.debian.org (apt-get install grub-pc). Prints only
# the image's path on stdout.
set -euo pipefail

cache=${KJUMP_CACHE:-/var/cache/kjump}
die() { echo "e2e/debian/disk.sh: $*" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tarball=$("$here/rootfs.sh" initramfs-tools)
key=$({ sha256sum <"${BASH_SOURCE[0]}"; echo "$tarball"; } | sha256sum | cut -c1-16)
out=$cache/disk/$key
if [[ -f $out/disk.raw ]]; then
	echo "$out/disk.raw"
	exit 0
fi
[[ $(id -u) == 0 ]] || die "building the disk image needs root (loop devices, mount, chroot)"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -f $out/disk.raw ]]; then
	echo "$out/disk.raw"
	exit 0
fi
tmp=$(mktemp -d "$out/tmp.XXXXXX")
loop=
cleanup() {
	set +e
	for m in dev/pts dev sys proc ""; do
		mountpoint -q "$tmp/mnt/$m" 2>/dev/null && umount -l "$tmp/mnt/$m"
	done
	[[ -n $loop ]] && losetup -d "$loop"
	rm -rf "$tmp"
}
trap cleanup EXIT
start=$SECONDS
img=$tmp/disk.raw
truncate -s 3G "$img"
# One partition from 1 MiB (GRUB's core image goes into the gap before it).
echo 'start=2048, type=83, bootable' | sfdisk -q "$img" >/dev/null
loop=$(losetup --find --show --partscan "$img")
part=${loop}p1
# Partition devices appear asynchronously; partx adds any missing.
partx -a "$loop" 2>/dev/null || true
for _ in $(seq 100); do [[ -b $part ]] && break; sleep 0.1; done
[[ -b $part ]] || die "$part did not appear (losetup --partscan)"
mkfs.ext4 -q -F -L kjroot "$part"
mkdir "$tmp/mnt"
mount "$part" "$tmp/mnt"
tar -C "$tmp/mnt" --numeric-owner -xf "$tarball"
uuid=$(blkid -s UUID -o value "$part")
printf 'UUID=%s / ext4 rw,errors=remount-ro 0 1\n' "$uuid" >"$tmp/mnt/etc/fstab"
mount -t proc proc "$tmp/mnt/proc"
mount -t sysfs sys "$tmp/mnt/sys"
mount --bind /dev "$tmp/mnt/dev"
mount -t devpts devpts "$tmp/mnt/dev/pts"
cp /etc/resolv.conf "$tmp/mnt/etc/resolv.conf" 2>/dev/null || true
# The boot loader's settings as an installer leaves them, plus the serial
# console (the VM has no display) and no menu delay.
echo "e2e/debian/disk.sh: apt-get install grub-pc in the chroot" >&2
chroot "$tmp/mnt" /bin/sh -ec '
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends grub-pc >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
' >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log" >&2; die "apt-get install grub-pc failed (log above)"; }
cat >"$tmp/mnt/etc/default/grub" <<'GRUB'
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0 no_timer_check"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
# grub-probe finds no BIOS drive for a loop device without a device map.
printf '(hd0) %s\n' "$loop" >"$tmp/mnt/boot/grub/device.map"
chroot "$tmp/mnt" grub-install --target=i386-pc --modules="part_msdos ext2" "$loop" >"$tmp/grub.log" 2>&1 ||
	{ cat "$tmp/grub.log" >&2; die "grub-install failed"; }
rm -f "$tmp/mnt/boot/grub/device.map"
: >"$tmp/mnt/etc/resolv.conf"
cleanup_mounts() {
	for m in dev/pts dev sys proc ""; do umount "$tmp/mnt/$m"; done
}
cleanup_mounts
losetup -d "$loop"
loop=
mv "$img" "$out/disk.raw"
echo "e2e/debian/disk.sh: built in $((SECONDS - start))s, $(du -sm "$out/disk.raw" | cut -f1) MiB used" >&2
echo "$out/disk.raw"
