#!/usr/bin/env bash
# Debian packages the tests need. Idempotent; skips apt when all are present.
set -euo pipefail
pkgs=(
  linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio xz-utils kmod dwarves   # test kernel build
  gcc make libc6-dev util-linux                                                      #   (flock in kernel/build.sh)
  qemu-system-x86 busybox-static e2fsprogs zstd                                      # VM harness
  nfs-kernel-server                                                                  # NFS scenarios
  binutils                                                                           # purgatory check
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
