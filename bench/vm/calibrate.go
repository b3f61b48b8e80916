package main

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

// calibrate runs the host pipeline (`hibernate image create` from an ELF
// core, 2 threads) on the same slice of real guest memory on the host and
// inside a TCG guest like the benchmark's, so the helper's capture speed can
// be compared with the pipeline's on the same (emulated) CPUs. The slice
// comes from make bench's dump; without it calibration is skipped.
func calibrate(dir, kernel, hibernateBin string) (string, error) {
	dump := filepath.Join(vm.CacheDir(), "bench", "guest-1g-vmcoreinfo.elf")
	if _, err := os.Stat(dump); err != nil {
		return "calibration skipped: no " + dump + " (make bench builds it)", nil
	}
	const sliceMiB = 128
	core := filepath.Join(dir, "calib.elf")
	nonzero, err := coreSlice(dump, core, sliceMiB<<20)
	if err != nil {
		return "", err
	}
	defer os.Remove(core)
	const runs = 3
	// The helper's defaults: level fast, codec auto (both targets keep up
	// with the CPUs here, so auto writes S2 on the host and in the guest,
	// as the helper does to the bench's disk).
	cmd := "hibernate image create --from /calib.elf --to /tmp/calib.img --level fast --compression auto --threads 2"
	var host []float64
	for i := 0; i < runs; i++ {
		out := filepath.Join(dir, "calib-host.img")
		t0 := time.Now()
		c := exec.Command(hibernateBin, "image", "create", "--from", core, "--to", out, "--level", "fast", "--compression", "auto", "--threads", "2")
		if b, err := c.CombinedOutput(); err != nil {
			return "", fmt.Errorf("calibration on the host: %v: %s", err, b)
		}
		host = append(host, time.Since(t0).Seconds())
		os.Remove(out)
	}
	script := fmt.Sprintf(`#!/bin/sh
mount -t proc proc /proc
# A root-only directory: kjump refuses image targets others can write.
mount -t tmpfs -o mode=0700 tmp /tmp
exec </dev/console >/dev/console 2>&1
for i in $(seq %d); do
  t0=$(cut -d' ' -f1 /proc/uptime)
  /bin/%s >/dev/null || echo "BENCH calib failed"
  t1=$(cut -d' ' -f1 /proc/uptime)
  rm -f /tmp/calib.img
  echo "BENCH calib seconds=$(echo "$t0 $t1" | awk '{ print $2 - $1 }')"
done
echo "BENCH calib done"
poweroff -f
`, runs, cmd)
	initrd := filepath.Join(dir, "calib-initramfs.gz")
	if err := (vm.Initramfs{Init: script, Files: map[string]vm.File{"bin/hibernate": {Host: hibernateBin}, "calib.elf": {Host: core, Mode: 0o644}}}).Write(initrd); err != nil {
		return "", err
	}
	defer os.Remove(initrd)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rd := filepath.Join(dir, "calibrate")
	os.MkdirAll(rd, 0o755)
	m, err := vm.Start(ctx, vm.Config{Name: "calibrate", RunDir: rd, Kernel: kernel, Initrd: initrd, MemMiB: 1024, SMP: 2, CPU: *cpuModel, Append: region})
	if err != nil {
		return "", err
	}
	defer m.Kill()
	var guest []float64
	for i := 0; i < runs; i++ {
		sm, err := m.Expect(`BENCH calib (seconds=([\d.]+)|failed)`, 10*time.Minute)
		if err != nil {
			return "", err
		}
		if sm[2] == "" {
			return "", fmt.Errorf("calibration in the guest failed (see %s)", m.ConsolePath())
		}
		s, _ := strconv.ParseFloat(sm[2], 64)
		guest = append(guest, s)
	}
	m.Wait(time.Minute)
	h, g := median(host), median(guest)
	return fmt.Sprintf("calibration: hibernate image create --level fast --compression auto --threads 2 on a %d MiB slice of the bench dump (%.0f%% non-zero pages), medians of %d: host %.2fs (%.0f MiB/s), TCG guest -smp 2 %.2fs (%.0f MiB/s); TCG slowdown %.1fx",
		sliceMiB, float64(nonzero)*100/(sliceMiB*256), runs, h, sliceMiB/h, g, sliceMiB/g, g/h), nil
}

// coreSlice writes an ELF core holding the n-byte window (n-aligned) of the
// largest PT_LOAD of src with the most non-zero pages, at the same physical
// addresses: compression, not zero skipping, is what costs CPU.
func coreSlice(src, dst string, n int64) (nonzeroPages int, err error) {
	f, err := elf.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var big *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && (big == nil || p.Filesz > big.Filesz) {
			big = p
		}
	}
	if big == nil || uint64(n) > big.Filesz {
		return 0, fmt.Errorf("%s: no PT_LOAD segment of %d bytes", src, n)
	}
	var off int64
	best := -1
	page := make([]byte, 4096)
	for w := int64(0); w+n <= int64(big.Filesz); w += n {
		nz := 0
		for p := w; p < w+n; p += 4096 {
			if _, err := big.ReadAt(page, p); err != nil {
				return 0, err
			}
			for _, b := range page {
				if b != 0 {
					nz++
					break
				}
			}
		}
		if nz > best {
			best, off = nz, w
		}
	}
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	const hdr = 64 + 56
	dataOff := int64(4096)
	h := make([]byte, hdr)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le := binary.LittleEndian
	le.PutUint16(h[16:], uint16(elf.ET_CORE))
	le.PutUint16(h[18:], uint16(elf.EM_X86_64))
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], 64) // e_phoff
	le.PutUint16(h[52:], 64) // e_ehsize
	le.PutUint16(h[54:], 56) // e_phentsize
	le.PutUint16(h[56:], 1)  // e_phnum
	p := h[64:]
	le.PutUint32(p[0:], uint32(elf.PT_LOAD))
	le.PutUint32(p[4:], uint32(elf.PF_R|elf.PF_W|elf.PF_X))
	le.PutUint64(p[8:], uint64(dataOff))
	le.PutUint64(p[24:], big.Paddr+uint64(off))
	le.PutUint64(p[32:], uint64(n))
	le.PutUint64(p[40:], uint64(n))
	le.PutUint64(p[48:], 4096)
	if _, err := out.Write(h); err != nil {
		out.Close()
		return 0, err
	}
	if _, err := out.Seek(dataOff, io.SeekStart); err != nil {
		out.Close()
		return 0, err
	}
	if _, err := io.Copy(out, io.NewSectionReader(big, off, n)); err != nil {
		out.Close()
		return 0, err
	}
	return best, out.Close()
}
