package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kjump/kjump/internal/image"
)

// elfCore is the --to-file output: an ELF64 core file as /proc/vmcore and
// QEMU's dump-guest-memory write them, which gdb, crash and 'hibernate
// image create --from' open. A PT_NOTE ("KJUMP": the image's id, kernel,
// host and time) and one PT_LOAD per RAM range, its physical address in
// p_paddr and (for gdb, which reads by p_vaddr) in p_vaddr too; each
// range's bytes follow page-aligned, holes (zero pages) left sparse.
type elfCore struct {
	f    *os.File
	segs []elfSeg // by physical address
	size int64
}

type elfSeg struct {
	start, end uint64
	off        int64 // file offset of start
}

const (
	elfHeaderSize = 64
	elfPhdrSize   = 56
)

// newELFCore writes the headers and note for ranges into f and sizes it.
func newELFCore(f *os.File, ranges []image.Range, note []string, pageSize int64) (*elfCore, error) {
	desc := []byte(strings.Join(note, "\n") + "\n")
	name := []byte("KJUMP\x00")
	var nb []byte
	nb = binary.LittleEndian.AppendUint32(nb, uint32(len(name)))
	nb = binary.LittleEndian.AppendUint32(nb, uint32(len(desc)))
	nb = binary.LittleEndian.AppendUint32(nb, 0)
	nb = append(nb, pad4(name)...)
	nb = append(nb, pad4(desc)...)

	phnum := 1 + len(ranges)
	noteOff := int64(elfHeaderSize + elfPhdrSize*phnum)
	off := alignUp(noteOff+int64(len(nb)), pageSize)
	c := &elfCore{f: f}
	for _, r := range ranges {
		c.segs = append(c.segs, elfSeg{start: r.Start, end: r.End, off: off})
		off += int64(r.Size())
	}
	c.size = off
	sort.Slice(c.segs, func(i, j int) bool { return c.segs[i].start < c.segs[j].start })

	le := binary.LittleEndian
	hdr := make([]byte, elfHeaderSize)
	copy(hdr, elf.ELFMAG)
	hdr[elf.EI_CLASS], hdr[elf.EI_DATA], hdr[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(hdr[16:], uint16(elf.ET_CORE))
	le.PutUint16(hdr[18:], uint16(elf.EM_X86_64))
	le.PutUint32(hdr[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(hdr[32:], elfHeaderSize) // e_phoff
	le.PutUint16(hdr[52:], elfHeaderSize) // e_ehsize
	le.PutUint16(hdr[54:], elfPhdrSize)
	le.PutUint16(hdr[56:], uint16(phnum))
	buf := hdr
	ph := func(typ elf.ProgType, flags elf.ProgFlag, off int64, addr, size, align uint64) {
		p := make([]byte, elfPhdrSize)
		le.PutUint32(p[0:], uint32(typ))
		le.PutUint32(p[4:], uint32(flags))
		le.PutUint64(p[8:], uint64(off))
		le.PutUint64(p[16:], addr) // p_vaddr
		le.PutUint64(p[24:], addr) // p_paddr
		le.PutUint64(p[32:], size) // p_filesz
		le.PutUint64(p[40:], size) // p_memsz
		le.PutUint64(p[48:], align)
		buf = append(buf, p...)
	}
	ph(elf.PT_NOTE, 0, noteOff, 0, uint64(len(nb)), 4)
	for _, r := range ranges {
		s := c.segs[sort.Search(len(c.segs), func(i int) bool { return c.segs[i].start >= r.Start })]
		ph(elf.PT_LOAD, elf.PF_R|elf.PF_W|elf.PF_X, s.off, r.Start, r.Size(), uint64(pageSize))
	}
	buf = append(buf, nb...)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return nil, err
	}
	if err := f.Truncate(c.size); err != nil {
		return nil, err
	}
	return c, nil
}

// WriteAt writes p at physical address phys, into the segments it spans.
func (c *elfCore) WriteAt(p []byte, phys int64) (int, error) {
	n := 0
	for len(p) > 0 {
		a := uint64(phys) + uint64(n)
		i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].end > a })
		if i == len(c.segs) || c.segs[i].start > a {
			return n, fmt.Errorf("physical address %#x is in no RAM range of the image", a)
		}
		s := c.segs[i]
		k := min(uint64(len(p)), s.end-a)
		if _, err := c.f.WriteAt(p[:k], s.off+int64(a-s.start)); err != nil {
			return n, err
		}
		n += int(k)
		p = p[k:]
	}
	return n, nil
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }
