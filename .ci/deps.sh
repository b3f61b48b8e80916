#!/usr/bin/env bash
# Debian packages the tests need. Idempotent; skips apt when all are present.
set -euo pipefail
pkgs=(
  linux-source-6.1 linux-source-6.12 bc flex bison libelf-dev libssl-dev cpio xz-utils kmod dwarves   # test kernel build
  gcc make libc6-dev util-linux                                                      #   (flock in kernel/build.sh)
  qemu-system-x86 busybox-static e2fsprogs xfsprogs btrfs-progs zstd         # VM harness (mkfs and fsck of data disks)
  nfs-kernel-server                                                                  # NFS scenarios
  binutils                                                                           # purgatory check; readelf of restored core files
  gdb file                                                                           # restored core files: gdb reads them, file(1) names them
  rsync                                                                              # kernel/distro.sh (bindeb-pkg's headers)
  fdisk                                                                              # sfdisk: partitioned loop devices in storage tests
  zsh                                                                                # the zsh completion script's syntax check
  systemd                                                                            # kernel-install (setup's systemd-boot path), systemd-analyze verify
  go-md2man debootstrap                                                              # man pages; .deb round trip in a chroot
  mount                                                                              # losetup: the GRUB boot disk (e2e/debian/disk.sh; GRUB itself
                                                                                     #   is installed in its chroot with apt, not on the host)
)
# Linux 7.3 (reworked kexec-jump convention) comes from trixie-backports,
# pinned low so nothing else is taken from there.
backports=(linux-source-7.3)
src=/etc/apt/sources.list.d/kjump-trixie-backports.sources
pin=/etc/apt/preferences.d/kjump-trixie-backports
added=0
if [[ ! -f $src ]]; then
  cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  printf 'Package: *\nPin: release n=trixie-backports\nPin-Priority: 100\n' >"$pin"
  added=1
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_bp=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${backports[@]}"; do installed "$p" || missing_bp+=("$p"); done
if ((${#missing[@]} + ${#missing_bp[@]} + added)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  ((${#missing[@]})) && apt-get install -y -q --no-install-recommends "${missing[@]}"
  ((${#missing_bp[@]})) && apt-get install -y -q --no-install-recommends -t trixie-backports "${missing_bp[@]}"
fi
exit 0
