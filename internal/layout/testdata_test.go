package layout

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

// qemuFirmware is the e820 map SeaBIOS gives a 1 GiB QEMU q35/pc guest
// (captured from a test VM's dmesg).
var qemuFirmware = []sysinfo.FirmwareEntry{
	{Range: Range{Start: 0x0, End: 0x9fc00}, Type: "System RAM"},
	{Range: Range{Start: 0x9fc00, End: 0xa0000}, Type: "Reserved"},
	{Range: Range{Start: 0xf0000, End: 0x100000}, Type: "Reserved"},
	{Range: Range{Start: 0x100000, End: 0x3ffe0000}, Type: "System RAM"},
	{Range: Range{Start: 0x3ffe0000, End: 0x40000000}, Type: "Reserved"},
	{Range: Range{Start: 0xfffc0000, End: 0x100000000}, Type: "Reserved"},
	{Range: Range{Start: 0xfd00000000, End: 0x10000000000}, Type: "Reserved"},
}

// qemuIOMem is /proc/iomem of that guest booted with memmap=128M$0x30000000.
func qemuIOMem(t testing.TB) []sysinfo.Resource {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "qemu-1g.iomem"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := sysinfo.ParseIOMem(f)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fakeBzImage builds the parts of a bzImage kjump reads (as jump's tests
// do): 4 setup sectors, header fields at their boot.rst offsets, and a
// payload.
func fakeBzImage(payload int) []byte {
	b := make([]byte, 5*512+payload)
	le := binary.LittleEndian
	b[0x1f1] = 4                    // setup_sects
	le.PutUint16(b[0x1fe:], 0xaa55) // boot_flag
	b[0x200], b[0x201] = 0xeb, 0x6a // jump: header ends at 0x26c
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020f) // version
	b[0x211] = 1                    // loadflags
	le.PutUint32(b[0x230:], 0x200000)
	b[0x234] = 1                       // relocatable_kernel
	le.PutUint16(b[0x236:], 1|2)       // xloadflags: 64-bit entry, above 4 GiB
	le.PutUint32(b[0x238:], 2047)      // cmdline_size
	le.PutUint32(b[0x260:], 0x2000000) // init_size
	for i := 5 * 512; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}
func hex(v uint64) string { return fmt.Sprintf("0x%x", v) }

// boot_params offsets (Documentation/arch/x86/boot.rst) the plan test reads.
const (
	hdrMagic        = 0x202
	hdrRamdiskImage = 0x218
	hdrRamdiskSize  = 0x21c
)
