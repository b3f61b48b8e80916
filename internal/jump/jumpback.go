package jump

import (
	"encoding/binary"
	"fmt"

	"github.com/kjump/kjump/internal/jump/purgatory"
)

// JumpBack describes the return into the original kernel, from its helper
// (checkpoint) or from a restore kernel (resume).
type JumpBack struct {
	Entry     uint64            // the original's re-entry point (from the purgatory)
	GDT       purgatory.GDTDesc // the original's saved GDT descriptor; Limit 0 = skip lgdt
	StubAddr  uint64            // a page of the reserved region for the stub
	EntryPage []byte            // current contents of the page holding Entry
	LowMem    []byte            // the original's [0, LowMemSize)
	// Extra are more of the original's pages put in place by the jump:
	// RAM a directly booted restore kernel used (its guard page), and the
	// original's handoff area with the report, which lies in that
	// kernel's memory.
	Extra []Segment
}

// Image builds the preserve-context jump-back image:
//   - the stub (lgdt + jmp) as entry;
//   - an identical copy of the entry's page: the calling kernel's kexec
//     identity map covers only its own RAM and its segments, so without a
//     segment there the call into the original page-faults (and kernels
//     6.14+ refuse an image without segments at load time);
//   - the original's low memory, swapped in at the last moment because the
//     calling kernel's SMP trampoline lives there.
func (j JumpBack) Image() (Image, error) {
	if len(j.EntryPage) != PageSize {
		return Image{}, fmt.Errorf("jump back: entry page copy is %d bytes, want %d", len(j.EntryPage), PageSize)
	}
	if len(j.LowMem) != LowMemSize {
		return Image{}, fmt.Errorf("jump back: low memory copy is %d bytes, want %d", len(j.LowMem), LowMemSize)
	}
	entryPage := alignDown(j.Entry, PageSize)
	segs := []Segment{NewSegment(purgatory.JumpBackStub(j.Entry, j.GDT), j.StubAddr)}
	covered := false
	for _, s := range append([]Segment{NewSegment(j.LowMem, 0)}, j.Extra...) {
		if s.Range().Contains(entryPage) && uint64(len(s.Buf)) >= entryPage-s.Mem+PageSize {
			// A segment carrying the page already: the same bytes.
			copy(s.Buf[entryPage-s.Mem:], j.EntryPage)
			covered = true
		}
	}
	if !covered {
		segs = append(segs, NewSegment(j.EntryPage, entryPage))
	}
	segs = append(segs, NewSegment(j.LowMem, 0))
	segs = append(segs, j.Extra...)
	im := Image{Entry: j.StubAddr, Segments: segs, PreserveContext: true}
	return im, im.Validate()
}

// Descriptor-table limits Linux uses: GDT_ENTRIES*8-1 and IDT_ENTRIES*16-1.
const (
	linuxGDTLimit = 16*8 - 1
	linuxIDTLimit = 256*16 - 1
)

// FindSavedGDT locates gdt_desc inside a copy of the original's
// saved_context (struct layout varies between versions): the GDT
// descriptor {0x7f, kernel address}, then a 2-byte pad and the IDT
// descriptor {0xfff, kernel address}. It is filled by
// save_processor_state() at jump time, so only the helper can read it.
func FindSavedGDT(savedContext []byte) (purgatory.GDTDesc, error) {
	le := binary.LittleEndian
	kernelAddr := func(v uint64) bool { return v>>47 == 0x1ffff }
	for off := 0; off+24 <= len(savedContext); off += 2 {
		gl, gb := le.Uint16(savedContext[off:]), le.Uint64(savedContext[off+2:])
		il, ib := le.Uint16(savedContext[off+12:]), le.Uint64(savedContext[off+14:])
		if gl == linuxGDTLimit && kernelAddr(gb) && il == linuxIDTLimit && kernelAddr(ib) {
			return purgatory.GDTDesc{Limit: gl, Base: gb}, nil
		}
	}
	return purgatory.GDTDesc{}, fmt.Errorf("no saved GDT descriptor found in the original's saved_context (%d bytes read): cannot return safely to a kernel older than 6.13", len(savedContext))
}

// LowMemSize is the low memory [0, 640 KiB) the helper kernel reuses (its SMP
// trampoline lives there): the purgatory backs it up, the helper reads the
// original's copy from the backup, and the jump back puts it in place again.
const LowMemSize = 0xa0000
