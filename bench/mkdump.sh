#!/bin/sh
# mkdump.sh OUT.elf — builds a realistic physical-memory dump for `make bench`:
# boots a 1 GiB QEMU guest (TCG, no network) with a busybox initramfs holding
# real files (kernel sources, object files, shared libraries), runs real
# programs over them so they sit in the page cache and in tmpfs, then saves
# the guest RAM with QEMU's dump-guest-memory (ELF, PT_LOAD p_paddr = guest
# physical address). Nothing leaves the machine.
set -eu
out=$1
cache=${KJUMP_CACHE:-/var/cache/kjump}
# The test kernel (kernel/build.sh prints its cached bzImage, building it
# once) and the source tree build.sh extracted next to it.
KERNEL=${KERNEL:-$("$(dirname "$0")/../kernel/build.sh" 6.1)}
SRC=${LINUX_SRC:-$(ls -d "$cache"/src/linux-source-6.1* 2>/dev/null | head -1)}
work=$(mktemp -d "${TMPDIR:-/tmp}/kjump-mkdump.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

[ -r "$KERNEL" ] || { echo "mkdump: no kernel at $KERNEL: build it or set KERNEL=path/to/bzImage" >&2; exit 1; }
[ -d "$SRC/kernel" ] || { echo "mkdump: no Linux source tree at '$SRC': run kernel/build.sh 6.1 or set LINUX_SRC" >&2; exit 1; }
for t in qemu-system-x86_64 python3 cpio /bin/busybox; do
	command -v "$t" >/dev/null || { echo "mkdump: $t is missing: apt-get install qemu-system-x86 python3 cpio busybox-static" >&2; exit 1; }
done

root=$work/root
mkdir -p "$root/bin" "$root/data/src" "$root/data/obj" "$root/data/lib" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
# take files in a stable order up to a byte budget, so dumps are comparable
take() { # take DIR PATTERN BUDGET_MB DEST
	find "$1" -type f -name "$2" -size -4M 2>/dev/null | sort | python3 -c '
import os, shutil, sys
budget, dest, n = int(sys.argv[1]) << 20, sys.argv[2], 0
for i, p in enumerate(l.strip() for l in sys.stdin):
    if not os.path.isfile(p): continue
    s = os.path.getsize(p)
    if n + s > budget: break
    shutil.copyfile(p, os.path.join(dest, "%06d_%s" % (i, os.path.basename(p)))); n += s
' "$3" "$4"
}
take "$SRC/kernel" '*.[ch]' 35 "$root/data/src"
take "$SRC/fs" '*.[ch]' 40 "$root/data/src"
# Object code: the kernel's own objects when the tree was built in place
# (the dumps before 2026-12-02); kernel/build.sh builds out of tree and
# deletes its objects, so otherwise the system's static libraries, which
# are archives of the same kind of object files.
if find "$SRC/drivers" -name '*.o' -print -quit 2>/dev/null | grep -q .; then
	take "$SRC/drivers" '*.o' 65 "$root/data/obj"
else
	take /usr/lib/x86_64-linux-gnu '*.a' 65 "$root/data/obj"
fi
take /usr/lib/x86_64-linux-gnu '*.so*' 55 "$root/data/lib"

cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs -o size=400m tmp /tmp
# programs working on real data: page cache, tmpfs files and process heaps
cat /data/*/* >/dev/null
tar cf /tmp/src.tar /data/src
gzip -1 -c /data/obj/* >/tmp/obj.gz
sort /data/src/*.c >/tmp/sorted.txt 2>/dev/null
md5sum /data/lib/* >/tmp/sums
dd if=/dev/urandom of=/tmp/random bs=1M count=16 2>/dev/null
awk '{ n[$1]++ } END { for (k in n) print k, n[k] }' /tmp/sorted.txt >/tmp/words &
sleep 2
sync
free -m
echo "KJUMP-VMCOREINFO $(cat /sys/kernel/vmcoreinfo)"
echo KJUMP-READY
while :; do sleep 1000; done
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"

sock=$work/monitor.sock
qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot -nic none \
	-kernel "$KERNEL" -initrd "$work/initrd.cpio" \
	-append 'console=ttyS0 quiet panic=-1 init=/init' \
	-monitor "unix:$sock,server,nowait" -serial "file:$work/console.log" \
	-display none </dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
i=0
until grep -q KJUMP-READY "$work/console.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 900 ] || ! kill -0 $qpid 2>/dev/null; then
		echo "mkdump: guest did not get ready; console:" >&2; tail -20 "$work/console.log" >&2; kill $qpid 2>/dev/null; exit 1
	fi
	sleep 1
done
mkdir -p "$(dirname "$out")"
python3 - "$sock" "$out.tmp" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def cmd(c):
    s.sendall(c.encode() + b"\n"); time.sleep(0.5)
cmd("stop"); cmd("dump-guest-memory " + sys.argv[2])
# dump-guest-memory is synchronous in HMP: the next command answers after it
s.settimeout(600); s.sendall(b"info status\n")
buf = b""
while b"VM status" not in buf:
    buf += s.recv(4096)
cmd("quit")
PY
wait $qpid || true
# QEMU stores the kernel's VMCOREINFO note only when the guest hands it over
# through fw_cfg (CONFIG_FW_CFG_SYSFS, not in the test kernel), so copy the
# note from guest RAM into a PT_NOTE of our own, as kdump's vmcore has it:
# free-page exclusion (hibernate image create --exclude-free) needs it.
python3 - "$out.tmp" $(sed -n 's/^KJUMP-VMCOREINFO //p' "$work/console.log" | tr -d '\r') <<'PY'
import struct, sys
path, addr, size = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3], 16)
f = open(path, "r+b")
eh = bytearray(f.read(64))
phoff, = struct.unpack_from("<Q", eh, 32)
phentsize, phnum = struct.unpack_from("<HH", eh, 54)
f.seek(phoff); ph = f.read(phentsize * phnum)
note = None
for i in range(phnum):
    typ, flags, off, vaddr, paddr, filesz, memsz, align = struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
    if typ == 1 and paddr <= addr and addr + size <= paddr + filesz:
        f.seek(off + addr - paddr); note = f.read(size)
if note is None or b"VMCOREINFO" not in note:
    sys.exit("mkdump: VMCOREINFO note at %#x not found in the dump" % addr)
f.seek(0, 2); noff = f.tell(); f.write(note)
newph = ph + struct.pack("<IIQQQQQQ", 4, 0, noff, 0, addr, size, size, 0)
f.seek(0, 2); pos = f.tell(); f.write(newph)
struct.pack_into("<Q", eh, 32, pos); struct.pack_into("<H", eh, 56, phnum + 1)
f.seek(0); f.write(eh)
PY
mv "$out.tmp" "$out"
grep -A3 total "$work/console.log" | head -3 || true
ls -l "$out"
