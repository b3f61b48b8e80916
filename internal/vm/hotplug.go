package vm

import (
	"fmt"
	"strings"
	"time"
)

// diskID is the QEMU device id of disk i (0: vda) of a machine started
// with Config.Unpluggable.
func diskID(i int) string { return fmt.Sprintf("kjdisk%d", i) }

// unpluggableDisk attaches disk i as a virtio-blk PCI device with an id,
// so that the monitor can hot-unplug it (device_del): on the default
// i440fx machine every device on the root bus is hot-pluggable through
// ACPI, as a guest kernel with HOTPLUG_PCI_ACPI handles it.
func unpluggableDisk(i int, path, cache string) []string {
	id := diskID(i)
	return []string{"-drive", "file=" + path + ",format=raw,if=none,id=" + id + "-drive,cache=" + cache,
		"-device", "virtio-blk-pci,drive=" + id + "-drive,id=" + id}
}

// UnplugDisk hot-unplugs disk i (0: vda) through the monitor, as pulling a
// disk out of a running machine would: the guest is asked to release the
// device and QEMU removes it. The machine needs Config.Monitor, and for a
// virtio disk Config.Unpluggable (a USB stick, Config.Bus, is always
// unpluggable).
func (m *Machine) UnplugDisk(i int) error {
	out, err := m.Monitor("device_del "+diskID(i), 30*time.Second)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("vm: device_del %s: %s", diskID(i), out)
	}
	return nil
}

// DiskPresent reports whether QEMU still has disk i (the guest may take a
// moment to release an unplugged one).
func (m *Machine) DiskPresent(i int) (bool, error) {
	out, err := m.Monitor("info qtree", 30*time.Second)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, `id "`+diskID(i)+`"`), nil
}
