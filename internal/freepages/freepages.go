// Package freepages finds the pages a stopped x86-64 Linux kernel holds free
// in its buddy allocator, from the kernel's VMCOREINFO note and its memory,
// as makedumpfile does for crash dumps. A hibernation image need not store
// them: the kernel promises nothing about a free page's contents, and
// restoring them as zeros is exactly what init_on_free=1 kernels expect.
//
// Only head pages of free buddy blocks count; pages on per-CPU lists and
// anything that does not look exactly like a buddy head are kept, so a
// misread can only cost space, never data.
package freepages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/phys"
)

// maxOrder bounds a buddy block's order: x86-64 kernels merge up to order 10
// (4 MiB); a larger value means the struct page was misread.
const maxOrder = 10

// Result is what Find learnt.
type Result struct {
	Free  []image.Range // page-aligned, sorted, merged
	Pages uint64        // pages in Free
	// Scanned is the number of struct pages read.
	Scanned uint64
}

// ErrTooFragmented is Find's answer when the free blocks need more list
// entries than the caller allows: the list would not fit the memory of a
// small helper kernel. Saving the free pages too costs space, never data.
var ErrTooFragmented = errors.New("free memory too fragmented for the free-page list's budget")

// Find walks the struct page of every page in ram and returns the free
// buddy blocks. mem reads physical memory of the kernel described by info
// (the VMCOREINFO key=value pairs).
func Find(mem io.ReaderAt, info map[string]string, ram []image.Range) (*Result, error) {
	return FindLimited(mem, info, ram, 0)
}

// FindLimited is Find with at most maxRanges entries in the free list
// (0: no limit); past that it stops with ErrTooFragmented. Adjacent blocks
// share one entry, so the list grows with fragmentation, not with size.
func FindLimited(mem io.ReaderAt, info map[string]string, ram []image.Range, maxRanges int) (*Result, error) {
	k, err := parseKernel(info)
	if err != nil {
		return nil, err
	}
	w := &walker{k: k, mem: mem, pt: &pageTables{mem: mem, root: k.topPGT, l5: k.l5, mask: k.entryMask}}
	if err := w.loadSections(); err != nil {
		return nil, err
	}
	res := &Result{}
	w.maxRanges = maxRanges
	for _, r := range ram {
		if err := w.scan(r, res); err != nil {
			return nil, err
		}
	}
	res.Free = phys.Ranges(res.Free).Normalize()
	return res, nil
}

// kernel holds the layout facts VMCOREINFO gives.
type kernel struct {
	pageSize    uint64
	topPGT      uint64 // physical address of init_top_pgt
	l5          bool
	entryMask   uint64 // page-table entry bits that are the address
	memSection  uint64 // virtual address of the mem_section roots
	roots       uint64 // NR_SECTION_ROOTS
	sectionSize uint64 // sizeof(struct mem_section)
	memMapOff   uint64 // offsetof(struct mem_section, section_mem_map)
	sectionBits uint64 // SECTION_SIZE_BITS
	pageStruct  uint64 // sizeof(struct page)
	mapcountOff uint64 // offsetof(struct page, _mapcount) (page_type)
	privateOff  uint64 // offsetof(struct page, private): the buddy order
	buddyValue  uint32 // page_type of a free buddy head page
}

// startKernelMap is __START_KERNEL_map: kernel image symbols are at
// phys_base plus their offset from it.
const startKernelMap = 0xffffffff80000000

// parseKernel reads the VMCOREINFO entries the walk needs.
func parseKernel(info map[string]string) (*kernel, error) {
	if len(info) == 0 {
		return nil, fmt.Errorf("no VMCOREINFO note: the kernel's memory layout is unknown")
	}
	var missing []string
	sym := func(key string) uint64 {
		v, ok := info[key]
		if !ok {
			missing = append(missing, key)
			return 0
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
		if err != nil {
			missing = append(missing, key+" (not hex: "+v+")")
		}
		return n
	}
	num := func(key string, def int64, required bool) int64 {
		v, ok := info[key]
		if !ok {
			if required {
				missing = append(missing, key)
			}
			return def
		}
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			missing = append(missing, key+" (not a number: "+v+")")
		}
		return n
	}
	k := &kernel{
		pageSize:    uint64(num("PAGESIZE", 4096, false)),
		l5:          num("NUMBER(pgtable_l5_enabled)", 0, false) == 1,
		memSection:  sym("SYMBOL(mem_section)"),
		roots:       uint64(num("LENGTH(mem_section)", 0, true)),
		sectionSize: uint64(num("SIZE(mem_section)", 0, true)),
		memMapOff:   uint64(num("OFFSET(mem_section.section_mem_map)", 0, true)),
		sectionBits: uint64(num("NUMBER(SECTION_SIZE_BITS)", 0, true)),
		pageStruct:  uint64(num("SIZE(page)", 0, true)),
		mapcountOff: uint64(num("OFFSET(page._mapcount)", 0, true)),
		privateOff:  uint64(num("OFFSET(page.private)", 0, true)),
		buddyValue:  uint32(num("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", 0, true)),
	}
	topPGT := sym("SYMBOL(init_top_pgt)")
	physBase := uint64(num("NUMBER(phys_base)", 0, true))
	sme := uint64(num("NUMBER(sme_mask)", 0, false))
	if len(missing) > 0 {
		return nil, fmt.Errorf("VMCOREINFO lacks %s", strings.Join(missing, ", "))
	}
	if k.pageSize != 4096 {
		return nil, fmt.Errorf("page size %d: only x86-64 4 KiB pages are supported", k.pageSize)
	}
	if topPGT < startKernelMap {
		return nil, fmt.Errorf("init_top_pgt %#x is not a kernel image address", topPGT)
	}
	k.topPGT = topPGT - startKernelMap + physBase
	k.entryMask = 0x000ffffffffff000 &^ sme
	switch {
	case k.pageStruct < 32 || k.pageStruct > 256:
		return nil, fmt.Errorf("sizeof(struct page) %d is implausible", k.pageStruct)
	case k.mapcountOff+4 > k.pageStruct || k.privateOff+8 > k.pageStruct:
		return nil, fmt.Errorf("struct page offsets (_mapcount %d, private %d) lie outside its %d bytes", k.mapcountOff, k.privateOff, k.pageStruct)
	case k.sectionBits < 15 || k.sectionBits > 40:
		return nil, fmt.Errorf("SECTION_SIZE_BITS %d is implausible", k.sectionBits)
	case k.sectionSize == 0 || k.sectionSize > k.pageSize || k.memMapOff+8 > k.sectionSize:
		return nil, fmt.Errorf("struct mem_section (size %d, section_mem_map at %d) is implausible", k.sectionSize, k.memMapOff)
	case k.roots == 0 || k.roots > 1<<20:
		return nil, fmt.Errorf("NR_SECTION_ROOTS %d is implausible", k.roots)
	}
	return k, nil
}

// walker reads struct pages through the kernel's own page tables.
type walker struct {
	k        *kernel
	mem      io.ReaderAt
	pt       *pageTables
	sections map[uint64]uint64 // section number -> encoded mem_map
	present  []uint64          // the section numbers, sorted
	// maxRanges bounds the free list (0: unbounded).
	maxRanges int
}

// sectionFlagBits are the flag bits at the bottom of section_mem_map
// (present, has mem_map, online, early, ...). The encoded pointer is
// vmemmap minus the section's first pfn times sizeof(struct page), a
// multiple of 64, so masking them loses no address bits.
const sectionFlagBits = 6

const sectionHasMemMap = 1 << 1

// kernelSpace is where x86-64 kernel addresses begin (the top half).
const kernelSpace = 0xffff800000000000

// loadSections reads the SPARSEMEM_EXTREME table: mem_section points at
// NR_SECTION_ROOTS pointers, each to a page of struct mem_section.
func (w *walker) loadSections() error {
	k := w.k
	perRoot := k.pageSize / k.sectionSize
	rootsPhys, err := w.pt.translate(k.memSection)
	if err != nil {
		return fmt.Errorf("mem_section: %w", err)
	}
	roots := make([]byte, k.roots*8)
	if _, err := w.readPhys(roots, rootsPhys, k.memSection); err != nil {
		return fmt.Errorf("mem_section roots: %w", err)
	}
	w.sections = map[uint64]uint64{}
	buf := make([]byte, perRoot*k.sectionSize)
	var base uint64 // the vmemmap every section's map must decode to
	for i := range k.roots {
		root := binary.LittleEndian.Uint64(roots[i*8:])
		if root == 0 {
			continue
		}
		if root < kernelSpace {
			return fmt.Errorf("mem_section root %d is %#x, not a kernel address: not a SPARSEMEM_EXTREME kernel", i, root)
		}
		if err := w.readVirt(buf, root); err != nil {
			return fmt.Errorf("mem_section root %d at %#x: %w", i, root, err)
		}
		for j := range perRoot {
			v := binary.LittleEndian.Uint64(buf[j*k.sectionSize+k.memMapOff:])
			if v&sectionHasMemMap == 0 {
				continue
			}
			enc := v &^ (1<<sectionFlagBits - 1)
			if base == 0 {
				base = enc
			} else if enc != base {
				// x86-64 maps every struct page into one virtual array
				// (SPARSEMEM_VMEMMAP): anything else is a misread.
				return fmt.Errorf("memory section %d maps its struct pages at %#x, section %d at %#x: not a SPARSEMEM_VMEMMAP kernel", i*perRoot+j, enc, w.present0(), base)
			}
			w.sections[i*perRoot+j] = enc
		}
	}
	for sec := range w.sections {
		w.present = append(w.present, sec)
	}
	slices.Sort(w.present)
	if len(w.sections) == 0 {
		return fmt.Errorf("mem_section lists no memory: not a SPARSEMEM_EXTREME x86-64 kernel?")
	}
	return nil
}

// present0 is the lowest section number seen so far (for messages).
func (w *walker) present0() uint64 {
	first := ^uint64(0)
	for sec := range w.sections {
		first = min(first, sec)
	}
	return first
}

// nextSection returns the first section with a memory map after sec.
func (w *walker) nextSection(sec uint64) (uint64, bool) {
	i := sort.Search(len(w.present), func(i int) bool { return w.present[i] > sec })
	if i == len(w.present) {
		return 0, false
	}
	return w.present[i], true
}

// readPhys reads physical memory, naming the virtual address on error.
func (w *walker) readPhys(p []byte, phys, virt uint64) (int, error) {
	n, err := w.mem.ReadAt(p, int64(phys))
	if err != nil && !(err == io.EOF && n == len(p)) {
		return n, fmt.Errorf("reading %#x (physical %#x): %w", virt, phys, err)
	}
	return n, nil
}

// readVirt reads kernel virtual memory page by page.
func (w *walker) readVirt(p []byte, virt uint64) error {
	for done := uint64(0); done < uint64(len(p)); {
		va := virt + done
		phys, err := w.pt.translate(va)
		if err != nil {
			return err
		}
		n := min(uint64(len(p))-done, w.k.pageSize-va%w.k.pageSize)
		if _, err := w.readPhys(p[done:done+n], phys, va); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// scan reads the struct pages of r a page of them at a time and records
// each free buddy block it finds.
func (w *walker) scan(r image.Range, res *Result) error {
	k := w.k
	perPage := k.pageSize / k.pageStruct
	buf := make([]byte, k.pageSize)
	pfn, end := r.Start/k.pageSize, r.End/k.pageSize
	for pfn < end {
		enc, ok := w.sections[pfn>>(k.sectionBits-12)]
		if !ok { // no memory map: nothing to learn, keep the pages
			next, ok := w.nextSection(pfn >> (k.sectionBits - 12))
			if !ok {
				break
			}
			pfn = max(pfn, next<<(k.sectionBits-12))
			continue
		}
		// Read the struct pages of pfn.. up to the end of their page of
		// struct pages, the section, or the range.
		va := enc + pfn*k.pageStruct
		n := min(perPage-(va%k.pageSize)/k.pageStruct, end-pfn)
		if sectionEnd := (pfn>>(k.sectionBits-12) + 1) << (k.sectionBits - 12); pfn+n > sectionEnd {
			n = sectionEnd - pfn
		}
		if n == 0 { // a struct page straddles a page of struct pages
			n = 1
		}
		b := buf[:n*k.pageStruct]
		if err := w.readVirt(b, va); err != nil {
			return fmt.Errorf("struct page of pfn %#x: %w", pfn, err)
		}
		res.Scanned += n
		next := pfn + n
		for i := uint64(0); i < n; {
			sp := b[i*k.pageStruct:]
			if binary.LittleEndian.Uint32(sp[k.mapcountOff:]) != k.buddyValue {
				i++
				continue
			}
			order := binary.LittleEndian.Uint64(sp[k.privateOff:])
			p := pfn + i
			if order > maxOrder || p&(1<<order-1) != 0 {
				// Not a consistent buddy head: keep the page.
				i++
				continue
			}
			blockEnd := min(p+1<<order, end)
			if n := len(res.Free); n > 0 && res.Free[n-1].End == p*k.pageSize {
				res.Free[n-1].End = blockEnd * k.pageSize
			} else if w.maxRanges > 0 && n >= w.maxRanges {
				return fmt.Errorf("%w: more than %d entries", ErrTooFragmented, n)
			} else {
				res.Free = append(res.Free, image.Range{Start: p * k.pageSize, End: blockEnd * k.pageSize})
			}
			res.Pages += blockEnd - p
			if blockEnd >= pfn+n { // the block runs past this batch
				next = blockEnd
				break
			}
			i = blockEnd - pfn
		}
		pfn = next
	}
	return nil
}
