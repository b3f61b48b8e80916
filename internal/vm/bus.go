package vm

import "fmt"

// Disk buses other than virtio, for Config.Bus: the controllers of real
// machines, as QEMU emulates them, so that the guest runs the drivers a
// laptop runs (xhci_hcd + usb_storage + sd_mod, nvme, ahci + sd_mod).
const (
	// BusUSB is a USB stick: a usb-storage device (bulk-only transport,
	// removable) on a qemu-xhci controller; the guest sees /dev/sdX.
	BusUSB = "usb"
	// BusNVMe is an NVMe disk: each disk its own controller with one
	// namespace; the guest sees /dev/nvmeNn1.
	BusNVMe = "nvme"
	// BusAHCI is a SATA disk on an AHCI controller (ICH9); the guest sees
	// /dev/sdX.
	BusAHCI = "ahci"
)

// Controller ids; a machine has at most one xHCI and one AHCI controller.
const (
	xhciID = "kjxhci"
	ahciID = "kjahci"
	// ahciPorts is the ICH9 AHCI controller's port count.
	ahciPorts = 6
)

// busArgs returns the QEMU arguments of the machine's disks on buses other
// than virtio (disk i keeps the id diskID(i), so UnplugDisk and DiskPresent
// work for them too: a USB stick can be pulled like a virtio disk), and
// the controllers they need.
func busArgs(cfg Config) ([]string, error) {
	var ctl, devs []string
	need := map[string]bool{}
	ahciPort := 0
	for i, d := range cfg.Disks {
		bus := cfg.Bus[d]
		if bus == "" {
			continue
		}
		if _, ok := cfg.WriteEIO[d]; ok {
			return nil, fmt.Errorf("vm: disk %s: WriteEIO is for virtio disks only, not bus %q", d, bus)
		}
		id := diskID(i)
		cache := "unsafe"
		if cfg.DirectIO[d] {
			cache = "none"
		}
		drive := "file=" + d + ",format=raw,if=none,id=" + id + "-drive,cache=" + cache
		if bps := cfg.WriteBPS[d]; bps > 0 {
			drive += fmt.Sprintf(",throttling.bps-write=%d", bps)
		}
		var dev string
		switch bus {
		case BusUSB:
			need[BusUSB] = true
			dev = "usb-storage,bus=" + xhciID + ".0,drive=" + id + "-drive,id=" + id + ",removable=on"
		case BusNVMe:
			// The serial names the controller in the guest
			// (/sys/class/nvme/nvmeN/serial).
			dev = "nvme,drive=" + id + "-drive,id=" + id + ",serial=" + id
		case BusAHCI:
			if ahciPort == ahciPorts {
				return nil, fmt.Errorf("vm: more than %d AHCI disks", ahciPorts)
			}
			need[BusAHCI] = true
			dev = fmt.Sprintf("ide-hd,bus=%s.%d,drive=%s-drive,id=%s", ahciID, ahciPort, id, id)
			ahciPort++
		default:
			return nil, fmt.Errorf("vm: disk %s: unknown bus %q (want %q, %q, %q or virtio)", d, bus, BusUSB, BusNVMe, BusAHCI)
		}
		devs = append(devs, "-drive", drive, "-device", dev)
	}
	if need[BusUSB] {
		ctl = append(ctl, "-device", "qemu-xhci,id="+xhciID)
	}
	if need[BusAHCI] {
		ctl = append(ctl, "-device", "ahci,id="+ahciID)
	}
	return append(ctl, devs...), nil
}

// onBus reports whether disk sits on a bus other than virtio.
func (cfg Config) onBus(disk string) bool { return cfg.Bus[disk] != "" }
