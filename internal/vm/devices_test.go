package vm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQEMUArgsNICAndDisplay(t *testing.T) {
	m := &Machine{sockDir: "/s"}
	a, err := m.args(Config{Kernel: "k", Net: &Net{Port: 4444, Model: NICE1000e}, Display: DisplayBochs, RunDir: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	got := shellQuote(a)
	for _, want := range []string{
		"-nodefaults -display none -no-reboot -serial stdio -device bochs-display,id=kjdisplay",
		"-netdev socket,id=n0,connect=127.0.0.1:4444 -device e1000e,netdev=n0,mac=52:54:00:12:34:57",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	for _, d := range []string{DisplayVGA, DisplayVirtioGPU} {
		a, err := m.args(Config{Kernel: "k", Display: d})
		if err != nil || !strings.Contains(shellQuote(a), "-device "+d+",id=kjdisplay") {
			t.Errorf("display %s: %v %v", d, a, err)
		}
	}
	// No display: no graphics device at all (-nodefaults drops QEMU's VGA).
	a, _ = m.args(Config{Kernel: "k", Net: &Net{Port: 1}})
	if got := shellQuote(a); strings.Contains(got, "kjdisplay") || !strings.Contains(got, "-device virtio-net-pci,netdev=n0,") {
		t.Errorf("default machine: %s", got)
	}
	if _, err := m.args(Config{Kernel: "k", Display: "cirrus-vga"}); err == nil {
		t.Error("unknown display accepted")
	}
	if _, err := m.args(Config{Kernel: "k", Net: &Net{Model: "rtl8139"}}); err == nil {
		t.Error("unknown NIC model accepted")
	}
}

// A machine with a VGA and an empty disk shows SeaBIOS's text screen:
// screendump reads it back through the monitor as an image.
func TestScreendumpReadsTheDisplay(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "empty.raw")
	if err := CreateDisk(disk, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, Config{Disks: []string{disk}, Display: DisplayVGA, Monitor: true, RunDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	// SeaBIOS draws its banner within a few seconds of TCG; QEMU opens the
	// monitor socket a moment after it starts.
	var lit int
	var err2 error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		img, err := m.Screendump(filepath.Join(dir, "screen.png"))
		if err2 = err; err != nil {
			continue
		}
		if b := img.Bounds(); b.Dx() < 320 || b.Dy() < 200 {
			t.Fatalf("screendump is %v, want a VGA screen", b)
		}
		lit = 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if r, g, bl, _ := img.At(x, y).RGBA(); r|g|bl != 0 {
					lit++
				}
			}
		}
		if lit > 100 {
			return
		}
	}
	if err2 != nil {
		t.Fatal(err2)
	}
	t.Fatalf("the VGA screen stayed black (%d lit pixels): screendump does not read what the guest drew", lit)
}
