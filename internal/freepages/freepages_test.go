package freepages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
)

// physMem is sparse physical memory: unwritten bytes read as zero.
type physMem map[uint64]*[4096]byte

func (m physMem) page(a uint64) *[4096]byte {
	p := m[a>>12]
	if p == nil {
		p = new([4096]byte)
		m[a>>12] = p
	}
	return p
}

func (m physMem) put64(a, v uint64) { binary.LittleEndian.PutUint64(m.page(a)[a&0xfff:], v) }
func (m physMem) put32(a uint64, v uint32) {
	binary.LittleEndian.PutUint32(m.page(a)[a&0xfff:], v)
}

func (m physMem) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		a := uint64(off) + uint64(i)
		if pg := m[a>>12]; pg != nil {
			p[i] = pg[a&0xfff]
		} else {
			p[i] = 0
		}
	}
	return len(p), nil
}

const (
	physBase    = 0x1000000
	topPGT      = physBase + 0x100000 // init_top_pgt, in the kernel image
	directMap   = 0xffff888000000000
	vmemmap     = 0xffffea0000000000
	structPages = 0x800000 // physical home of the vmemmap
	sectionBits = 27
	buddy61     = 0xffffff7f // ~PG_buddy, Linux 6.1
)

// newKernel lays out a small x86-64 kernel's memory: page tables mapping the
// direct map (1 GiB page) and vmemmap (2 MiB pages), one memory section,
// and a struct page per pfn with the given buddy heads (pfn -> order).
func newKernel(t *testing.T, pages uint64, buddyValue uint32, heads map[uint64]uint64) (physMem, map[string]string) {
	m := physMem{}
	pud1, pud2, pmd := uint64(0x101000+physBase), uint64(0x102000+physBase), uint64(0x103000+physBase)
	m.put64(topPGT+(directMap>>39&511)*8, pud1|0x63)
	m.put64(pud1+(directMap>>30&511)*8, 0|0xe3) // 1 GiB page at phys 0
	m.put64(topPGT+(vmemmap>>39&511)*8, pud2|0x63)
	m.put64(pud2+(vmemmap>>30&511)*8, pmd|0x63)
	m.put64(pmd, structPages|0xe3) // 2 MiB page
	// mem_section: 2048 roots at 0x200000; root 0 -> a page of sections.
	roots, sections := uint64(0x200000), uint64(0x300000)
	m.put64(roots, directMap+sections)
	m.put64(sections+0, vmemmap|0x3) // present, has mem_map; pfn 0 based
	for pfn := range pages {
		sp := structPages + pfn*64
		m.put32(sp+48, 0xffffffff) // _mapcount -1
		if order, ok := heads[pfn]; ok {
			m.put32(sp+48, buddyValue)
			m.put64(sp+40, order)
		}
	}
	info := map[string]string{
		"OSRELEASE": "6.1.0-test", "PAGESIZE": "4096",
		"SYMBOL(init_top_pgt)":                fmt.Sprintf("%x", uint64(0xffffffff80000000)+topPGT-physBase),
		"NUMBER(phys_base)":                   fmt.Sprint(physBase),
		"NUMBER(pgtable_l5_enabled)":          "0",
		"SYMBOL(mem_section)":                 fmt.Sprintf("%x", directMap+roots),
		"LENGTH(mem_section)":                 "2048",
		"SIZE(mem_section)":                   "16",
		"OFFSET(mem_section.section_mem_map)": "0",
		"NUMBER(SECTION_SIZE_BITS)":           fmt.Sprint(sectionBits),
		"SIZE(page)":                          "64",
		"OFFSET(page._mapcount)":              "48",
		"OFFSET(page.private)":                "40",
		"NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)":   fmt.Sprint(int32(buddyValue)),
	}
	return m, info
}

func TestFind(t *testing.T) {
	heads := map[uint64]uint64{
		5:    0,  // one free page
		7:    2,  // misaligned for order 2: not a consistent head, kept
		1024: 10, // 4 MiB block
		4096: 3,
		6000: 11, // beyond the largest order: kept
		8184: 3,  // runs past the end of RAM: clipped
	}
	for _, value := range []uint32{buddy61, 0xf0000000 /* PGTY_buddy << 24, Linux 6.12+ */} {
		mem, info := newKernel(t, 8192, value, heads)
		ram := []image.Range{{Start: 0, End: 0x9f000}, {Start: 0x100000, End: 8190 << 12}}
		res, err := Find(mem, info, ram)
		if err != nil {
			t.Fatal(err)
		}
		want := []image.Range{{Start: 5 << 12, End: 6 << 12}, {Start: 1024 << 12, End: 2048 << 12}, {Start: 4096 << 12, End: 4104 << 12}, {Start: 8184 << 12, End: 8190 << 12}}
		if !reflect.DeepEqual(res.Free, want) || res.Pages != 1+1024+8+6 {
			t.Fatalf("buddy value %#x: free %v (%d pages), want %v", value, res.Free, res.Pages, want)
		}
	}
}

// Adjacent free blocks share one list entry, and a list that would pass
// its budget stops with ErrTooFragmented instead of growing without bound.
func TestFreeListBudget(t *testing.T) {
	heads := map[uint64]uint64{}
	for pfn := uint64(0); pfn < 1024; pfn += 2 { // every other page free: 512 entries
		heads[pfn] = 0
	}
	for pfn := uint64(2048); pfn < 4096; pfn++ { // 2048 adjacent free pages: one entry
		heads[pfn] = 0
	}
	mem, info := newKernel(t, 8192, buddy61, heads)
	ram := []image.Range{{Start: 0, End: 8192 << 12}}
	res, err := FindLimited(mem, info, ram, 513)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Free) != 513 || res.Pages != 512+2048 || res.Free[512] != (image.Range{Start: 2048 << 12, End: 4096 << 12}) {
		t.Fatalf("%d entries, %d pages, last %v", len(res.Free), res.Pages, res.Free[len(res.Free)-1])
	}
	if _, err := FindLimited(mem, info, ram, 100); !errors.Is(err, ErrTooFragmented) {
		t.Fatalf("a list over its budget: %v", err)
	}
}

// A value in another format (7.3 prints PAGE_BUDDY_MAPCOUNT_VALUE unsigned)
// parses to the same 32 bits.
func TestBuddyValueSigns(t *testing.T) {
	for _, v := range []string{"4026531840", "-268435456", "0xf0000000"} {
		_, info := newKernel(t, 1, 0, nil)
		info["NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)"] = v
		k, err := parseKernel(info)
		if err != nil {
			t.Fatal(err)
		}
		if k.buddyValue != 0xf0000000 {
			t.Errorf("%s parsed as %#x", v, k.buddyValue)
		}
	}
}

func TestRefusals(t *testing.T) {
	mem, info := newKernel(t, 64, buddy61, nil)
	ram := []image.Range{{Start: 0, End: 64 << 12}}
	for _, tc := range []struct {
		name   string
		change func(map[string]string)
		want   string
	}{
		{"no note", func(i map[string]string) { clear(i) }, "no VMCOREINFO note"},
		{"no struct page size", func(i map[string]string) { delete(i, "SIZE(page)") }, "VMCOREINFO lacks SIZE(page)"},
		{"bad symbol", func(i map[string]string) { i["SYMBOL(init_top_pgt)"] = "zz" }, "not hex"},
		{"page tables elsewhere", func(i map[string]string) { i["NUMBER(phys_base)"] = "0" }, "not mapped"},
		{"huge pages", func(i map[string]string) { i["PAGESIZE"] = "65536" }, "page size 65536"},
	} {
		i := map[string]string{}
		for k, v := range info {
			i[k] = v
		}
		tc.change(i)
		if _, err := Find(mem, i, ram); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

var _ io.ReaderAt = physMem{}

// A huge range with no memory map behind it (a bogus core file) ends at
// once instead of stepping through every section.
func TestHugeRangeWithoutSections(t *testing.T) {
	mem, info := newKernel(t, 64, buddy61, map[uint64]uint64{8: 3})
	res, err := Find(mem, info, []image.Range{{Start: 0, End: 1 << 62}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages != 8 {
		t.Fatalf("free pages %d, want 8", res.Pages)
	}
}

// FuzzFind feeds the walker struct pages and table entries it cannot
// trust (an offline core file may hold anything): it must return, with
// only aligned, in-range blocks.
func FuzzFind(f *testing.F) {
	f.Add([]byte{5, 0, 0x40, 10, 0x10, 3}, uint16(0), uint64(0))
	f.Add([]byte{7, 2, 255, 255}, uint16(0x18), uint64(0xe3))
	f.Fuzz(func(t *testing.T, heads []byte, entryOff uint16, entry uint64) {
		h := map[uint64]uint64{}
		for i := 0; i+1 < len(heads); i += 2 {
			h[uint64(heads[i])*16] = uint64(heads[i+1] % 16)
		}
		mem, info := newKernel(t, 4096, buddy61, h)
		// Corrupt one page-table or section word.
		mem.put64(topPGT+uint64(entryOff)%0x4000&^7, entry)
		ram := []image.Range{{Start: 0, End: 4096 << 12}}
		res, err := Find(mem, info, ram)
		if err != nil {
			return
		}
		var pages uint64
		for _, r := range res.Free {
			if r.Start%4096 != 0 || r.End%4096 != 0 || r.End <= r.Start || r.End > 4096<<12 {
				t.Fatalf("bad free range %v", r)
			}
			pages += r.Size() / 4096
		}
		if pages != res.Pages {
			t.Fatalf("ranges hold %d pages, Pages says %d", pages, res.Pages)
		}
	})
}

// Sections decoding to different struct page arrays are refused: x86-64
// kernels have one vmemmap.
func TestSectionsDisagree(t *testing.T) {
	mem, info := newKernel(t, 64, buddy61, nil)
	mem.put64(0x300000+16, (vmemmap+0x1000)|0x3) // section 1
	if _, err := Find(mem, info, []image.Range{{Start: 0, End: 64 << 12}}); err == nil || !strings.Contains(err.Error(), "not a SPARSEMEM_VMEMMAP kernel") {
		t.Fatalf("got %v", err)
	}
}

// A misread layout (here mem_section taken as a flat array, whose words
// are no root pointers) must not invent free pages.
func TestMisreadFindsNothing(t *testing.T) {
	mem, info := newKernel(t, 64, buddy61, map[uint64]uint64{8: 3})
	info["SYMBOL(mem_section)"] = fmt.Sprintf("%x", uint64(directMap+0x300000))
	res, err := Find(mem, info, []image.Range{{Start: 0, End: 64 << 12}})
	if err == nil && res.Pages != 0 {
		t.Fatalf("misread layout found %d free pages: %v", res.Pages, res.Free)
	}
}
