package vm

import (
	"strings"
	"testing"
)

func TestBusArgs(t *testing.T) {
	m := &Machine{sockDir: "/s"}
	a, err := m.args(Config{Kernel: "k", RunDir: "/r",
		Disks:    []string{"/v.img", "/stick.img", "/n1.img", "/sata.img", "/n2.img"},
		Bus:      map[string]string{"/stick.img": BusUSB, "/n1.img": BusNVMe, "/sata.img": BusAHCI, "/n2.img": BusNVMe},
		WriteBPS: map[string]int64{"/stick.img": 4 << 20}, DirectIO: map[string]bool{"/sata.img": true}})
	if err != nil {
		t.Fatal(err)
	}
	got := shellQuote(a)
	for _, want := range []string{
		// The virtio disk stays vda; the others leave the virtio list.
		"-drive file=/v.img,format=raw,if=virtio,cache=unsafe -device qemu-xhci,id=kjxhci -device ahci,id=kjahci ",
		"-drive file=/stick.img,format=raw,if=none,id=kjdisk1-drive,cache=unsafe,throttling.bps-write=4194304 -device usb-storage,bus=kjxhci.0,drive=kjdisk1-drive,id=kjdisk1,removable=on",
		"-drive file=/n1.img,format=raw,if=none,id=kjdisk2-drive,cache=unsafe -device nvme,drive=kjdisk2-drive,id=kjdisk2,serial=kjdisk2",
		"-drive file=/sata.img,format=raw,if=none,id=kjdisk3-drive,cache=none -device ide-hd,bus=kjahci.0,drive=kjdisk3-drive,id=kjdisk3",
		"-drive file=/n2.img,format=raw,if=none,id=kjdisk4-drive,cache=unsafe -device nvme,drive=kjdisk4-drive,id=kjdisk4,serial=kjdisk4",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "if=virtio") != 1 {
		t.Errorf("only /v.img is a virtio disk:\n%s", got)
	}

	// Without such disks, no controller.
	a, _ = m.args(Config{Kernel: "k", RunDir: "/r", Disks: []string{"/v.img"}})
	if got := shellQuote(a); strings.Contains(got, "xhci") || strings.Contains(got, "ahci") {
		t.Errorf("controllers without disks on them:\n%s", got)
	}
	for name, cfg := range map[string]Config{
		"unknown bus": {Kernel: "k", Disks: []string{"/a"}, Bus: map[string]string{"/a": "scsi"}},
		"EIO on usb":  {Kernel: "k", Disks: []string{"/a"}, Bus: map[string]string{"/a": BusUSB}, WriteEIO: map[string]int64{"/a": 1}},
		"7 sata":      {Kernel: "k", Disks: []string{"/1", "/2", "/3", "/4", "/5", "/6", "/7"}, Bus: map[string]string{"/1": BusAHCI, "/2": BusAHCI, "/3": BusAHCI, "/4": BusAHCI, "/5": BusAHCI, "/6": BusAHCI, "/7": BusAHCI}},
	} {
		if _, err := m.args(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
