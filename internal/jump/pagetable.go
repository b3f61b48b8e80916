package jump

import "encoding/binary"

const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	pteHuge     = 1 << 7
	hugePage    = 2 << 20
)

// IdentityMap is a set of x86-64 page tables, built to sit at physical
// address Base, that identity-maps the 2 MiB pages covering its ranges.
type IdentityMap struct {
	Base  uint64
	Pages []byte // PML5, PML4, then PDPTs and PDs
	PML5  uint64 // root for CR4.LA57 kernels
	PML4  uint64 // root for 4-level paging
}

// NewIdentityMap maps exactly the 2 MiB pages touching ranges (all below
// 256 TiB) and nothing else: a write-back mapping of device memory could
// be speculatively read, so no blanket map of the address space.
func NewIdentityMap(base uint64, ranges Ranges) IdentityMap {
	m := IdentityMap{Base: base, PML5: base, PML4: base + PageSize}
	pages := [][]byte{make([]byte, PageSize), make([]byte, PageSize)}
	entry := func(p []byte, i int) uint64 { return binary.LittleEndian.Uint64(p[i*8:]) }
	set := func(p []byte, i int, v uint64) { binary.LittleEndian.PutUint64(p[i*8:], v) }
	addr := func(i int) uint64 { return base + uint64(i)*PageSize }
	// child returns the table that entry i of table t points to, creating it.
	child := func(t, i int) int {
		if e := entry(pages[t], i); e&ptePresent != 0 {
			return int((e&^0xfff - base) / PageSize)
		}
		pages = append(pages, make([]byte, PageSize))
		n := len(pages) - 1
		set(pages[t], i, addr(n)|ptePresent|pteWritable)
		return n
	}
	set(pages[0], 0, m.PML4|ptePresent|pteWritable)
	for _, r := range ranges.Normalize() {
		for a := alignDown(r.Start, hugePage); a < r.End; a += hugePage {
			pdpt := child(1, int(a>>39)&511)
			pd := child(pdpt, int(a>>30)&511)
			set(pages[pd], int(a>>21)&511, a|ptePresent|pteWritable|pteHuge)
		}
	}
	for _, p := range pages {
		m.Pages = append(m.Pages, p...)
	}
	return m
}

// Translate walks the 4-level tables like the MMU would; for tests.
func (m IdentityMap) Translate(va uint64) (uint64, bool) {
	table := m.PML4
	for level, shift := 0, 39; level < 3; level, shift = level+1, shift-9 {
		off := table - m.Base + uint64((va>>shift)&511)*8
		if off+8 > uint64(len(m.Pages)) {
			return 0, false
		}
		e := binary.LittleEndian.Uint64(m.Pages[off:])
		if e&ptePresent == 0 {
			return 0, false
		}
		if level == 2 {
			if e&pteHuge == 0 {
				return 0, false
			}
			return e&^(hugePage-1)&^(1<<63) | va&(hugePage-1), true
		}
		table = e &^ 0xfff
	}
	return 0, false
}
