package layout

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

// qemuFirmware is the e820 map SeaBIOS gives a 1 GiB QEMU q35/pc guest
// (captured from a test VM's dmesg).
var qemuFirmware = []sysinfo.FirmwareEntry{
	{Range{Start: 0x0, End: 0x9fc00}, "System RAM"},
	{Range{Start: 0x9fc00, End: 0xa0000}, "Reserved"},
	{Range{Start: 0xf0000, End: 0x100000}, "Reserved"},
	{Range{Start: 0x100000, End: 0x3ffe0000}, "System RAM"},
	{Range{Start: 0x3ffe0000, End: 0x40000000}, "Reserved"},
	{Range{Start: 0xfffc0000, End: 0x100000000}, "Reserved"},
	{Range{Start: 0xfd00000000, End: 0x10000000000}, "Reserved"},
}

// qemuIOMem is /proc/iomem of that guest booted with memmap=128M$0x30000000.
func qemuIOMem(t testing.TB) []sysinfo.Resource {
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
