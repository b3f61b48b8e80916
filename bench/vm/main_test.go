package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/vm"
)

func TestPhasesFromConsoleLog(t *testing.T) {
	log := `[    1.000] boot
[    5.250] resume: verifying image x on /dev/vda
[   12.500] resume: image x verified and invalidated; starting the restore kernel
[   15.000] kjump-helper: restoring 1.9 GiB
[   40.000] kjump-helper: jumping into the restored kernel at 0x1
[   41.500] BENCH resumed rc=0
`
	p := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := phases(p, resumeMarks[false])
	want := "boot 5.2s, verify 7.2s, restore kernel boot 2.5s, restore 25.0s, jump back 1.5s"
	if got != want {
		t.Errorf("phases = %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {nil, 0}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestDropHostCache(t *testing.T) {
	// In the package directory, not t.TempDir: /tmp may be tmpfs, whose
	// pages cannot leave the page cache.
	f, err := os.CreateTemp(".", "hostcache-test-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if n, err := hostCached(f); err != nil || n == 0 {
		t.Fatalf("a file just written: %d bytes cached (%v), want > 0", n, err)
	}
	left, err := dropHostCache(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d bytes still in the host page cache after dropping", left)
	}
}

func TestDirectBootFromEntry(t *testing.T) {
	con := "BENCH entry rc=0\nBENCH entry begin\nlinux /boot/kjump/helper.bzImage\ninitrd /boot/kjump/helper.cpio.gz\noptions memmap=1$2 kjump.direct=1-2 kjump.resume=/dev/vda\nBENCH entry end\nBENCH hibernating kjump\n"
	files := map[string]vm.File{"boot/kjump/helper.bzImage": {Host: "/h/bzImage"}, "boot/kjump/helper.cpio.gz": {Host: "/h/helper.cpio.gz"}}
	k, i, o, err := directBoot(con, files)
	if err != nil || k != "/h/bzImage" || i != "/h/helper.cpio.gz" || o != "memmap=1$2 kjump.direct=1-2 kjump.resume=/dev/vda" {
		t.Errorf("directBoot = %q, %q, %q, %v", k, i, o, err)
	}
	delete(files, "boot/kjump/helper.cpio.gz")
	if _, _, _, err := directBoot(con, files); err == nil {
		t.Error("an initrd the initramfs does not hold: no error")
	}
	if _, _, _, err := directBoot(strings.Replace(con, "rc=0", "rc=1", 1), files); err == nil {
		t.Error("boot-entry failed: no error")
	}
}
