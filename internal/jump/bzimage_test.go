package jump

import (
	"encoding/binary"
	"strings"
	"testing"
)

// fakeBzImage builds the parts of a bzImage kjump reads: 4 setup sectors
// (header fields at their boot.rst offsets) and a payload.
func fakeBzImage(payload int) []byte {
	b := make([]byte, 5*512+payload)
	le := binary.LittleEndian
	b[hdrSetupSects] = 4
	le.PutUint16(b[hdrBootFlag:], 0xaa55)
	b[hdrJump], b[hdrJump+1] = 0xeb, 0x6a // header ends at 0x26c
	copy(b[hdrMagic:], "HdrS")
	le.PutUint16(b[hdrVersion:], 0x020f)
	b[hdrLoadFlags] = 1
	le.PutUint32(b[hdrKernelAlignment:], 0x200000)
	b[hdrRelocatable] = 1
	le.PutUint16(b[hdrXLoadFlags:], xlfKernel64|2)
	le.PutUint32(b[hdrCmdlineSize:], 2047)
	le.PutUint32(b[hdrInitSize:], 0x2000000)
	for i := 5 * 512; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func TestParseBzImage(t *testing.T) {
	k, err := ParseBzImage(fakeBzImage(8192))
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != 0x020f || k.KernelAlignment != 0x200000 || k.InitSize != 0x2000000 || k.CmdlineSize != 2047 {
		t.Errorf("header fields: %+v", k)
	}
	if len(k.Payload) != 8192 || k.Payload[1] != byte((5*512+1)%256) {
		t.Errorf("payload at the wrong offset")
	}
	if len(k.Setup) != 0x26c-hdrSetupSects {
		t.Errorf("setup header is %d bytes", len(k.Setup))
	}
}

func TestParseBzImageRefuses(t *testing.T) {
	mutate := map[string]func([]byte){
		"no magic":        func(b []byte) { copy(b[hdrMagic:], "XXXX") },
		"old protocol":    func(b []byte) { binary.LittleEndian.PutUint16(b[hdrVersion:], 0x020a) },
		"32-bit only":     func(b []byte) { binary.LittleEndian.PutUint16(b[hdrXLoadFlags:], 0) },
		"not relocatable": func(b []byte) { b[hdrRelocatable] = 0 },
		"bad alignment":   func(b []byte) { binary.LittleEndian.PutUint32(b[hdrKernelAlignment:], 3) },
	}
	for name, m := range mutate {
		b := fakeBzImage(4096)
		m(b)
		if _, err := ParseBzImage(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseBzImage([]byte("short")); err == nil || !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("short file: %v", err)
	}
}

func TestBootParams(t *testing.T) {
	k, _ := ParseBzImage(fakeBzImage(4096))
	e820 := []E820Entry{{Range{Start: 0, End: 0x9f000}, E820RAM}, {Range{Start: 0x130000000, End: 0x140000000}, E820RAM}}
	bp, err := BootParams{Kernel: k, Cmdline: 0x1_2345_6000, CmdlineLen: 10, Initrd: Range{Start: 0x1_3000_0000, End: 0x1_3080_0000},
		E820: e820, ACPIRSDP: 0xf59d0}.Build()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	checks := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"magic kept", uint64(le.Uint32(bp[hdrMagic:])), uint64(le.Uint32([]byte("HdrS")))},
		{"type_of_loader", uint64(bp[hdrTypeOfLoader]), 0xff},
		{"cmd_line_ptr", uint64(le.Uint32(bp[hdrCmdLinePtr:])), 0x23456000},
		{"ext_cmd_line_ptr", uint64(le.Uint32(bp[bpExtCmdLinePtr:])), 1},
		{"ramdisk_image", uint64(le.Uint32(bp[hdrRamdiskImage:])), 0x30000000},
		{"ext_ramdisk_image", uint64(le.Uint32(bp[bpExtRamdiskImage:])), 1},
		{"ramdisk_size", uint64(le.Uint32(bp[hdrRamdiskSize:])), 0x800000},
		{"acpi_rsdp_addr", le.Uint64(bp[bpAcpiRsdpAddr:]), 0xf59d0},
		{"e820_entries", uint64(bp[bpE820Entries]), 2},
		{"e820[1].addr", le.Uint64(bp[bpE820Table+20:]), 0x130000000},
		{"e820[1].size", le.Uint64(bp[bpE820Table+28:]), 0x10000000},
		{"e820[1].type", uint64(le.Uint32(bp[bpE820Table+36:])), 1},
		{"sentinel", uint64(bp[0x1ef]), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if _, err := (BootParams{Kernel: k, CmdlineLen: 5000}).Build(); err == nil {
		t.Error("oversized command line accepted")
	}
	if _, err := (BootParams{Kernel: k, E820: make([]E820Entry, 129)}).Build(); err == nil {
		t.Error("129 e820 entries accepted")
	}
}
