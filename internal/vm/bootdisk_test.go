package vm

import (
	"strings"
	"testing"
)

// Without a kernel QEMU boots the first disk through the firmware: no
// -kernel, -append or -initrd (an Initrd without a Kernel is ignored).
func TestDiskBootArgs(t *testing.T) {
	m := &Machine{sockDir: "/s"}
	a, err := m.args(Config{Initrd: "/i", MemMiB: 512, SMP: 1, Disks: []string{"/boot.raw", "/image.raw"}, RunDir: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	got := shellQuote(a)
	if !strings.Contains(got, "-smp 1 -boot order=c,strict=on -nodefaults") || !strings.Contains(got, "-drive file=/boot.raw,format=raw,if=virtio,cache=unsafe -drive file=/image.raw") {
		t.Errorf("args: %s", got)
	}
	for _, no := range []string{"-kernel", "-append", "-initrd"} {
		if strings.Contains(got, no) {
			t.Errorf("args have %s: %s", no, got)
		}
	}
	var cfg Config
	if err := cfg.setDefaults(); err == nil || !strings.Contains(err.Error(), "no disk to boot from") {
		t.Errorf("neither kernel nor disk: %v", err)
	}
}
