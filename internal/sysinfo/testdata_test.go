package sysinfo

import (
	"os"
	"path/filepath"
	"testing"
)

// qemuFirmware is the e820 map SeaBIOS gives a 1 GiB QEMU q35/pc guest
// (captured from a test VM's dmesg).
var qemuFirmware = []FirmwareEntry{
	{Range{Start: 0x0, End: 0x9fc00}, "System RAM"},
	{Range{Start: 0x9fc00, End: 0xa0000}, "Reserved"},
	{Range{Start: 0xf0000, End: 0x100000}, "Reserved"},
	{Range{Start: 0x100000, End: 0x3ffe0000}, "System RAM"},
	{Range{Start: 0x3ffe0000, End: 0x40000000}, "Reserved"},
	{Range{Start: 0xfffc0000, End: 0x100000000}, "Reserved"},
	{Range{Start: 0xfd00000000, End: 0x10000000000}, "Reserved"},
}

// qemuIOMem is /proc/iomem of that guest booted with memmap=128M$0x30000000.
func qemuIOMem(t testing.TB) []Resource {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "qemu-1g.iomem"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseIOMem(f)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// writeFirmwareMemmap lays entries out like /sys/firmware/memmap.
func writeFirmwareMemmap(t testing.TB, entries []FirmwareEntry) string {
	t.Helper()
	dir := t.TempDir()
	for i, e := range entries {
		d := filepath.Join(dir, itoa(i))
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "start"), []byte(hex(e.Start)+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "end"), []byte(hex(e.End-1)+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "type"), []byte(e.Type+"\n"), 0o644)
	}
	return dir
}
