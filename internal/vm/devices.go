package vm

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"slices"
	"strings"
	"time"
)

// NIC models Net.Model accepts: QEMU device names.
const (
	NICVirtio = "virtio-net-pci" // the default
	NICE1000e = "e1000e"         // Intel 82574L, the e1000e driver
)

// Displays Config.Display accepts: QEMU device names. Without one the
// machine has no graphics at all (-nodefaults).
const (
	DisplayVGA       = "VGA"            // standard VGA with the Bochs VBE extensions: vgacon, then bochs-drm
	DisplayBochs     = "bochs-display"  // Bochs VBE without legacy VGA: bochs-drm only
	DisplayVirtioGPU = "virtio-gpu-pci" // virtio-gpu in 2D mode: virtio_gpu
)

// displayID is the QEMU id of Config.Display's device, for screendump -d.
const displayID = "kjdisplay"

// nicDevice is the -device argument of n's NIC on netdev id.
func (n *Net) nicDevice(id, mac string) (string, error) {
	model := n.Model
	if model == "" {
		model = NICVirtio
	}
	if !slices.Contains([]string{NICVirtio, NICE1000e}, model) {
		return "", fmt.Errorf("vm: unknown NIC model %q (want %s or %s)", model, NICVirtio, NICE1000e)
	}
	return model + ",netdev=" + id + ",mac=" + mac, nil
}

// displayArgs adds cfg.Display's device. The machine keeps -display none:
// nothing opens a window, and the monitor's screendump still reads what
// the guest drew.
func displayArgs(display string) ([]string, error) {
	switch display {
	case "":
		return nil, nil
	case DisplayVGA, DisplayBochs, DisplayVirtioGPU:
		return []string{"-device", display + ",id=" + displayID}, nil
	}
	return nil, fmt.Errorf("vm: unknown display %q (want %s, %s or %s)", display, DisplayVGA, DisplayBochs, DisplayVirtioGPU)
}

// Screendump saves what Config.Display's device shows as a PNG file at
// path (HMP screendump: QEMU reads the guest's framebuffer as the device
// scans it out). The machine needs Config.Display and Config.Monitor.
func (m *Machine) Screendump(path string) (image.Image, error) {
	if strings.ContainsAny(path, " \t\n\"") {
		return nil, fmt.Errorf("vm: screendump path %q has characters HMP cannot take", path)
	}
	out, err := m.Monitor("screendump "+path+" -f png "+displayID, time.Minute)
	if err != nil {
		return nil, err
	}
	if out != "" {
		return nil, fmt.Errorf("vm: screendump: %s", out)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("vm: screendump %s: %w", path, err)
	}
	return img, nil
}
