package layout

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/jump"
)

func testHelperConfig(t *testing.T) HelperConfig {
	k, err := jump.ParseBzImage(fakeBzImage(6 << 20))
	if err != nil {
		t.Fatal(err)
	}
	return HelperConfig{Kernel: k, Initrd: bytes.Repeat([]byte{1}, 3<<20+5), Cmdline: "console=ttyS0,115200",
		Region: Reservation{Range: Range{Start: 0x30000000, End: 0x38000000}}, Firmware: qemuFirmware,
		IOMem: qemuIOMem(t), VMCoreInfo: RangeOf(0x3fe0a000, 0x1000)}
}

func TestPlanHelper(t *testing.T) {
	c := testHelperConfig(t)
	p, err := PlanHelper(c)
	if err != nil {
		t.Fatal(err)
	}
	region := c.Region.Range
	for _, s := range p.Image.Segments {
		if !region.Covers(s.Range()) {
			t.Errorf("%v outside the reserved region %v", s, region)
		}
	}
	if !p.Image.PreserveContext {
		t.Error("helper image must preserve context")
	}
	purg := p.Image.Segments[len(p.Image.Segments)-1]
	if p.Image.Entry != purg.Mem {
		t.Errorf("entry %#x is not the purgatory %#x", p.Image.Entry, purg.Mem)
	}
	kernel := p.Image.Segments[0]
	if kernel.Mem%c.Kernel.KernelAlignment != 0 || kernel.MemSize < c.Kernel.InitSize {
		t.Errorf("kernel %v: misaligned or smaller than init_size %#x", kernel, c.Kernel.InitSize)
	}
	if !p.Tail.Contains(p.Handoff) || !p.Tail.Covers(p.Backup) || !p.Tail.Contains(p.JumpStub) {
		t.Errorf("kjump pages outside the tail %v: handoff %#x backup %v stub %#x", p.Tail, p.Handoff, p.Backup, p.JumpStub)
	}
	for _, s := range p.Image.Segments {
		if s.Range().Contains(p.Handoff) || s.Range().Overlaps(p.Backup) {
			t.Errorf("%v covers the handoff area or backup: it would be swapped away on return", s)
		}
	}
	// The helper's RAM is the region below the tail, plus low memory.
	var ram []jump.E820Entry
	for _, e := range p.E820 {
		if e.Type == jump.E820RAM {
			ram = append(ram, e)
		}
	}
	if len(ram) != 2 || ram[0].Range != (Range{Start: 0, End: 0x9f000}) || ram[1].Range != p.HelperRAM {
		t.Errorf("helper RAM in e820: %v", ram)
	}
	// The core header shows low memory from the backup, the rest in place.
	var hdr []byte
	for _, s := range p.Image.Segments {
		if bytes.HasPrefix(s.Buf, []byte(elf.ELFMAG)) {
			hdr = s.Buf
			if !strings.Contains(p.Cmdline, "elfcorehdr=0x") || !strings.Contains(p.Cmdline, "@"+hex(s.Mem)) {
				t.Errorf("cmdline %q does not point at the ELF header %#x", p.Cmdline, s.Mem)
			}
		}
	}
	f, err := elf.NewFile(bytes.NewReader(hdr))
	if err != nil {
		t.Fatal(err)
	}
	low := f.Progs[1]
	if low.Paddr != 0x1000 || low.Off != p.Backup.Start+0x1000 {
		t.Errorf("low memory load %+v, backup %v", low.ProgHeader, p.Backup)
	}
	for _, want := range []string{"console=ttyS0,115200", "nokaslr", "kjump.handoff=" + hex(p.Handoff)} {
		if !strings.Contains(p.Cmdline, want) {
			t.Errorf("cmdline %q lacks %q", p.Cmdline, want)
		}
	}
	// boot_params points at the initrd and the command line.
	var bp []byte
	for _, s := range p.Image.Segments {
		if len(s.Buf) == jump.PageSize && string(s.Buf[hdrMagic:hdrMagic+4]) == "HdrS" {
			bp = s.Buf
		}
	}
	initrd := p.Image.Segments[1]
	if got := uint64(binary.LittleEndian.Uint32(bp[hdrRamdiskImage:])); got != initrd.Mem {
		t.Errorf("ramdisk_image %#x, initrd segment at %#x", got, initrd.Mem)
	}
	if got := binary.LittleEndian.Uint32(bp[hdrRamdiskSize:]); got != uint32(len(c.Initrd)) {
		t.Errorf("ramdisk_size %d, want %d", got, len(c.Initrd))
	}
}

func TestPlanHelperRefusesSmallRegion(t *testing.T) {
	c := testHelperConfig(t)
	c.Region.Range = Range{Start: 0x30000000, End: 0x33000000} // 48 MiB
	_, err := PlanHelper(c)
	if err == nil || !strings.Contains(err.Error(), "too small") || !strings.Contains(err.Error(), "reserve at least") {
		t.Errorf("got %v", err)
	}
}

func TestOriginalRAM(t *testing.T) {
	res := qemuIOMem(t)
	if got, want := OriginalRAM(res, Range{Start: 0x30000000, End: 0x38000000}), (Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x30000000}, {Start: 0x38000000, End: 0x3ffe0000}}); !reflect.DeepEqual(got, want) {
		t.Errorf("OriginalRAM = %v, want %v", got, want)
	}
}
