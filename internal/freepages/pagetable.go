package freepages

import (
	"encoding/binary"
	"fmt"
	"io"
)

// pageTables translates kernel virtual addresses by walking the kernel's
// own x86-64 page tables in its memory (4 or 5 levels, 1 GiB and 2 MiB
// pages). The last large mapping is cached: struct pages are read in
// address order and vmemmap is mapped with 2 MiB pages.
type pageTables struct {
	mem  io.ReaderAt
	root uint64 // physical address of the top-level table
	l5   bool
	mask uint64 // address bits of an entry (without the SME bit)

	cacheVirt, cachePhys, cacheSize uint64
}

const (
	ptePresent = 1 << 0
	ptePSE     = 1 << 7 // large page at PUD/PMD level
)

func (t *pageTables) translate(va uint64) (uint64, error) {
	if t.cacheSize != 0 && va-t.cacheVirt < t.cacheSize {
		return t.cachePhys + va - t.cacheVirt, nil
	}
	shifts := []uint{39, 30, 21, 12}
	if t.l5 {
		shifts = append([]uint{48}, shifts...)
	}
	table := t.root
	var b [8]byte
	for level, shift := range shifts {
		idx := va >> shift & 511
		if _, err := t.mem.ReadAt(b[:], int64(table+idx*8)); err != nil {
			return 0, fmt.Errorf("page table entry for %#x at %#x: %w", va, table+idx*8, err)
		}
		e := binary.LittleEndian.Uint64(b[:])
		if e&ptePresent == 0 {
			return 0, fmt.Errorf("%#x is not mapped (level %d entry %#x)", va, level, e)
		}
		last := shift == 12
		if !last && e&ptePSE != 0 && (shift == 30 || shift == 21) {
			size := uint64(1) << shift
			base := e & t.mask &^ (size - 1)
			t.cacheVirt, t.cachePhys, t.cacheSize = va&^(size-1), base, size
			return base + va&(size-1), nil
		}
		table = e & t.mask
		if last {
			return table + va&0xfff, nil
		}
	}
	panic("unreachable")
}
