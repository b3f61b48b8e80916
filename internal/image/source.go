package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/mapwin"
)

// Source is physical memory to save: ReadAt reads at a physical address, and
// Ranges lists the RAM to save (sorted, disjoint, page aligned). ReadAt must
// be safe for concurrent use; Write reads from several goroutines.
type Source interface {
	io.ReaderAt
	Ranges() []Range
}

// RangeSource returns a Source reading ranges straight from r, where the
// offset in r is the physical address (/dev/mem, or a flat memory file).
// Ranges are normalized: page aligned, sorted and merged.
func RangeSource(r io.ReaderAt, ranges []Range) Source {
	return &rangeSource{r: r, ranges: normalize(ranges, defaultPageSize)}
}

type rangeSource struct {
	r      io.ReaderAt
	ranges []Range
}

func (s *rangeSource) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }
func (s *rangeSource) Ranges() []Range                         { return s.ranges }

// ELFSource is physical memory described by an ELF core file: /proc/vmcore in
// a kdump or kjump helper kernel, a kdump file, or QEMU dump-guest-memory.
// Each PT_LOAD segment maps p_paddr to file offset p_offset; bytes past
// p_filesz up to p_memsz read as zero.
type ELFSource struct {
	r        io.ReaderAt
	segments []segment // sorted by paddr
	ranges   []Range
	info     map[string]string
	win      *mapwin.Mapper // the core file's mapping, if it is a file
}

type segment struct {
	paddr, filesz, memsz uint64
	off                  int64
}

// OpenELF parses the program headers of an ELF core file.
func OpenELF(r io.ReaderAt) (*ELFSource, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF core file (%v): pass /proc/vmcore, a kdump file or a QEMU dump-guest-memory file", err)
	}
	if f.Type != elf.ET_CORE {
		return nil, fmt.Errorf("ELF file is of type %v, not a core file: pass /proc/vmcore or a QEMU dump-guest-memory file", f.Type)
	}
	s := &ELFSource{r: r, info: map[string]string{}}
	var rs []Range
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Memsz == 0 {
				continue
			}
			if p.Filesz > p.Memsz || p.Off > 1<<62 || p.Paddr > ^uint64(0)-p.Memsz {
				return nil, fmt.Errorf("ELF core: PT_LOAD at paddr %#x has inconsistent sizes (filesz %#x, memsz %#x): the core file is damaged", p.Paddr, p.Filesz, p.Memsz)
			}
			s.segments = append(s.segments, segment{paddr: p.Paddr, filesz: p.Filesz, memsz: p.Memsz, off: int64(p.Off)})
			rs = append(rs, Range{Start: p.Paddr, End: p.Paddr + p.Memsz})
		case elf.PT_NOTE:
			s.readNotes(p)
		}
	}
	if len(s.segments) == 0 {
		return nil, errors.New("ELF core file has no PT_LOAD segments, so there is no memory to save")
	}
	sort.SliceStable(s.segments, func(i, j int) bool { return s.segments[i].paddr < s.segments[j].paddr })
	s.ranges = normalize(rs, defaultPageSize)
	if f, ok := r.(*os.File); ok {
		s.mapSegments(f)
	}
	return s, nil
}

// mapSegments arranges for the core file to be read through mappings, so
// Write can check pages for zero in place and copy only non-zero ones:
// reading /proc/vmcore through read() copies every page, mmap does not
// (makedumpfile does the same). The mapping goes in shared 64 MiB windows:
// /proc/vmcore fills in the page tables of a whole mapping at mmap time,
// 2 MiB of them per GiB of RAM, which a helper kernel with about 100 MiB
// could not hold for a large machine. Where mapping fails, ReadAt is used.
func (s *ELFSource) mapSegments(f *os.File) {
	s.win = mapwin.New(int(f.Fd()), unix.PROT_READ, mapwin.DefaultSize, mapwin.DefaultMax)
}

// Close unmaps what OpenELF mapped. The ReaderAt is the caller's to close.
func (s *ELFSource) Close() error {
	if s.win != nil {
		s.win.Close()
		s.win = nil
	}
	return nil
}

// view returns n bytes of physical memory at addr without copying, if one
// segment stores them all, and the function to call when done with them.
// That drops the range's page table entries where it can (a core file in
// the page cache: the process's resident set stays at the chunks in
// flight; /proc/vmcore's PFN mapping refuses, harmlessly).
func (s *ELFSource) view(addr uint64, n int) ([]byte, func(), bool) {
	sg, ok := s.find(addr)
	if !ok || s.win == nil || sg.filesz == 0 {
		return nil, nil, false
	}
	rel := addr - sg.paddr
	if rel+uint64(n) > sg.filesz {
		return nil, nil, false
	}
	b, done, err := s.win.Map(sg.off+int64(rel), n, sg.off, sg.off+int64(sg.filesz))
	if err != nil {
		return nil, nil, false
	}
	return b, func() { dropPages(b); done() }, true
}

func dropPages(b []byte) {
	pg := os.Getpagesize()
	if len(b) == 0 {
		return
	}
	lead := (pg - int(uintptr(unsafe.Pointer(unsafe.SliceData(b))))%pg) % pg
	if n := (len(b) - lead) / pg * pg; n > 0 && lead < len(b) {
		unix.Madvise(b[lead:lead+n], unix.MADV_DONTNEED)
	}
}

// Ranges are the PT_LOAD physical ranges, widened to pages and merged.
func (s *ELFSource) Ranges() []Range { return s.ranges }

// VMCoreInfo returns the kernel's VMCOREINFO note (OSRELEASE, PAGESIZE,
// ...) if the core has one; QEMU adds it only with -device vmcoreinfo.
func (s *ELFSource) VMCoreInfo() map[string]string { return s.info }

// ReadAt reads physical memory at off. Bytes no segment stores (the tail of
// a segment past p_filesz, page padding around unaligned segments) read as
// zero. Where segments overlap the first one in paddr order wins.
func (s *ELFSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ELF core: negative physical address")
	}
	addr := uint64(off)
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		seg, ok := s.find(a)
		if !ok {
			// A hole: zero up to the next segment that starts later.
			n := len(p) - done
			if next, ok := s.next(a); ok && next-a < uint64(n) {
				n = int(next - a)
			}
			clear(p[done : done+n])
			done += n
			continue
		}
		rel := a - seg.paddr
		n := min(uint64(len(p)-done), seg.memsz-rel)
		if rel < seg.filesz {
			m := min(n, seg.filesz-rel)
			k, err := s.r.ReadAt(p[done:done+int(m)], seg.off+int64(rel))
			if err != nil && !(errors.Is(err, io.EOF) && uint64(k) == m) {
				return done + k, fmt.Errorf("ELF core: reading paddr %#x: %w", a, err)
			}
			clear(p[done+int(m) : done+int(n)])
		} else {
			clear(p[done : done+int(n)])
		}
		done += int(n)
	}
	return done, nil
}

// find returns the first segment containing addr.
func (s *ELFSource) find(addr uint64) (segment, bool) {
	i := sort.Search(len(s.segments), func(i int) bool { return s.segments[i].paddr > addr })
	// Segments may overlap, so look back over every segment starting at or
	// below addr; core files have few segments and this is per read.
	for j := 0; j < i; j++ {
		sg := s.segments[j]
		if addr-sg.paddr < sg.memsz {
			return sg, true
		}
	}
	return segment{}, false
}

// next returns the start of the first segment beginning above addr.
func (s *ELFSource) next(addr uint64) (uint64, bool) {
	i := sort.Search(len(s.segments), func(i int) bool { return s.segments[i].paddr > addr })
	if i == len(s.segments) {
		return 0, false
	}
	return s.segments[i].paddr, true
}

// readNotes picks the VMCOREINFO note out of a PT_NOTE segment. Notes are
// informational, so a malformed one is ignored rather than fatal.
func (s *ELFSource) readNotes(p *elf.Prog) {
	if p.Filesz > 1<<20 {
		return
	}
	buf := make([]byte, p.Filesz)
	if _, err := p.ReadAt(buf, 0); err != nil {
		return
	}
	for len(buf) >= 12 {
		order := leUint32
		namesz, descsz := order(buf[0:]), order(buf[4:])
		nameEnd := 12 + align4(uint64(namesz))
		descEnd := nameEnd + align4(uint64(descsz))
		if descEnd > uint64(len(buf)) {
			return
		}
		name := strings.TrimRight(string(buf[12:12+namesz]), "\x00")
		if name == "VMCOREINFO" {
			desc := buf[nameEnd : nameEnd+uint64(descsz)]
			for _, line := range bytes.Split(desc, []byte{'\n'}) {
				if k, v, ok := strings.Cut(strings.TrimRight(string(line), "\x00"), "="); ok {
					s.info[k] = v
				}
			}
		}
		buf = buf[descEnd:]
	}
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
