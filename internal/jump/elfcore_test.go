package jump

import (
	"bytes"
	"debug/elf"
	"testing"
)

func TestElfCoreHeader(t *testing.T) {
	loads := []CoreLoad{{PAddr: 0x1000, Source: 0x37e01000, Size: 0x9e000}, {PAddr: 0x100000, Source: 0x100000, Size: 0x2ff00000}}
	hdr, err := ElfCoreHeader(loads, RangeOf(0x3ff0000, 0x1000))
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(hdr))
	if err != nil {
		t.Fatalf("debug/elf cannot read the header: %v", err)
	}
	if f.Type != elf.ET_CORE || f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("header: %v %v %v", f.Type, f.Machine, f.Class)
	}
	if len(f.Progs) != 3 || f.Progs[0].Type != elf.PT_NOTE || f.Progs[0].Off != 0x3ff0000 {
		t.Fatalf("program headers: %+v", f.Progs)
	}
	low := f.Progs[1]
	if low.Type != elf.PT_LOAD || low.Paddr != 0x1000 || low.Off != 0x37e01000 || low.Filesz != 0x9e000 || low.Memsz != 0x9e000 {
		t.Errorf("low memory load: %+v", low.ProgHeader)
	}
	if _, err := ElfCoreHeader(nil, Range{}); err == nil {
		t.Error("empty core accepted")
	}
	if _, err := ElfCoreHeader([]CoreLoad{{PAddr: 0x1001, Source: 0x1001, Size: 0x1000}}, Range{}); err == nil {
		t.Error("unaligned load accepted")
	}
}

func TestIdentityMap(t *testing.T) {
	m := NewIdentityMap(0x37e00000, Ranges{{Start: 0, End: 0xa0000}, {Start: 0x30000000, End: 0x38000000}, {Start: 0x1_0000_0000, End: 0x1_0020_0000}})
	for _, a := range []uint64{0, 0x9ffff, 0x1fffff, 0x30000000, 0x37ff8010, 0x1_0000_1234} {
		if pa, ok := m.Translate(a); !ok || pa != a {
			t.Errorf("%#x -> %#x, %v", a, pa, ok)
		}
	}
	for _, a := range []uint64{0x200000, 0x2fffffff, 0x38000000, 0x1_0020_0000, 0xfee00000} {
		if _, ok := m.Translate(a); ok {
			t.Errorf("%#x is mapped but should not be", a)
		}
	}
	if m.PML5 != 0x37e00000 || m.PML4 != 0x37e01000 {
		t.Errorf("roots %#x %#x", m.PML5, m.PML4)
	}
	// PML5 entry 0 points at the PML4.
	if e := uint64(m.Pages[0]) | uint64(m.Pages[1])<<8 | uint64(m.Pages[2])<<16 | uint64(m.Pages[3])<<24; e&^0xfff != m.PML4 {
		t.Errorf("PML5[0] = %#x", e)
	}
	if len(m.Pages)%PageSize != 0 || len(m.Pages) > 8*PageSize {
		t.Errorf("%d bytes of page tables", len(m.Pages))
	}
}
