package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

type testSeg struct {
	paddr, filesz, memsz uint64
	data                 []byte // filesz bytes
}

// buildCore writes a minimal ELF64 core file the way /proc/vmcore and QEMU
// lay one out: a PT_NOTE with VMCOREINFO, then PT_LOAD segments.
func buildCore(segs []testSeg, vmcoreinfo string) []byte {
	const ehsize, phsize = 64, 56
	var note bytes.Buffer
	name := "VMCOREINFO\x00"
	binary.Write(&note, binary.LittleEndian, [3]uint32{uint32(len(name)), uint32(len(vmcoreinfo)), 0})
	note.WriteString(name)
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}
	note.WriteString(vmcoreinfo)
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}
	phnum := 1 + len(segs)
	off := uint64(ehsize + phsize*phnum)
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, ehsize)
	copy(hdr, "\x7fELF\x02\x01\x01")
	le.PutUint16(hdr[16:], 4)  // ET_CORE
	le.PutUint16(hdr[18:], 62) // EM_X86_64
	le.PutUint32(hdr[20:], 1)
	le.PutUint64(hdr[32:], ehsize) // phoff
	le.PutUint16(hdr[52:], ehsize)
	le.PutUint16(hdr[54:], phsize)
	le.PutUint16(hdr[56:], uint16(phnum))
	b.Write(hdr)
	ph := func(typ uint32, off, paddr, filesz, memsz uint64) {
		p := make([]byte, phsize)
		le.PutUint32(p[0:], typ)
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], 0xffff888000000000+paddr) // vaddr: direct map
		le.PutUint64(p[24:], paddr)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		b.Write(p)
	}
	ph(4, off, 0, uint64(note.Len()), uint64(note.Len()))
	off += uint64(note.Len())
	for _, s := range segs {
		ph(1, off, s.paddr, s.filesz, s.memsz)
		off += s.filesz
	}
	b.Write(note.Bytes())
	for _, s := range segs {
		b.Write(s.data)
	}
	return b.Bytes()
}

func TestELFSource(t *testing.T) {
	mem := testMemory(3, 2<<20)
	for i := range mem { // no zero pages: every byte is checked below
		if mem[i] == 0 {
			mem[i] = 0x5a
		}
	}
	seg := func(start, filesz, memsz uint64) testSeg {
		return testSeg{start, filesz, memsz, mem[start : start+filesz]}
	}
	segs := []testSeg{
		seg(0x1000, 0x9e000, 0x9ec00),   // low RAM, ends mid-page (0x9fc00): rest zero
		seg(0x100000, 0x80000, 0xa0000), // p_filesz < p_memsz: tail reads as zero
		seg(0x140000, 0x10000, 0x10000), // overlaps the previous segment (kernel text)
		seg(0xc0000, 0x8000, 0x8000),    // out of order
	}
	core := buildCore(segs, "OSRELEASE=6.1.0-kjump\nPAGESIZE=4096\n")
	src, err := OpenELF(bytes.NewReader(core))
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{Start: 0x1000, End: 0xa0000}, {Start: 0xc0000, End: 0xc8000}, {Start: 0x100000, End: 0x1a0000}}
	if got := src.Ranges(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	if rel := src.VMCoreInfo()["OSRELEASE"]; rel != "6.1.0-kjump" {
		t.Fatalf("OSRELEASE %q", rel)
	}
	// Expected physical memory: segment file bytes, zero elsewhere.
	flat := make([]byte, 0x1a0000)
	copy(flat[0x1000:0x9f000], mem[0x1000:])
	copy(flat[0xc0000:0xc8000], mem[0xc0000:])
	copy(flat[0x100000:0x180000], mem[0x100000:])
	got := make([]byte, len(flat))
	if _, err := src.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, flat) {
		for i := range got {
			if got[i] != flat[i] {
				t.Fatalf("physical %#x: got %#x want %#x", i, got[i], flat[i])
			}
		}
	}
	// Unaligned reads across segment boundaries and holes.
	for _, off := range []int64{0x9fbf0, 0x17fff0, 0xbfff0, 0x13fff8} {
		p := make([]byte, 64)
		src.ReadAt(p, off)
		if !bytes.Equal(p, flat[off:off+64]) {
			t.Fatalf("read at %#x differs", off)
		}
	}
	// Round trip through an image: restored memory equals the core's.
	img, st := writeImage(t, src, WithChunkSize(64<<10))
	if st.ZeroPages == 0 {
		t.Fatal("expected zero pages from the p_memsz tail")
	}
	restored := restore(t, img)
	if len(restored) < len(flat) {
		restored = append(restored, make([]byte, len(flat)-len(restored))...)
	}
	if !bytes.Equal(restored[:len(flat)], flat) {
		t.Fatal("restored memory differs from the core file's")
	}
}

// The same core as a file: Write reads pages in place through windows on
// the segments (at unaligned file offsets here).
func TestELFSourceMapped(t *testing.T) {
	mem := testMemory(5, 2<<20)
	segs := []testSeg{
		{0x1000, 0x9e000, 0x9ec00, mem[0x1000:0x9f000]},
		{0x100000, 0x100000, 0x120000, mem[0x100000:0x200000]},
	}
	path := t.TempDir() + "/core"
	if err := os.WriteFile(path, buildCore(segs, "OSRELEASE=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := OpenELF(f)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	flat := make([]byte, 0x220000)
	copy(flat[0x1000:0x9f000], mem[0x1000:])
	copy(flat[0x100000:0x200000], mem[0x100000:])
	img, _ := writeImage(t, src, WithChunkSize(64<<10), WithThreads(2))
	if n := src.win.Mapped(); n != len(segs) {
		t.Fatalf("%d windows mapped, want one per segment (%d)", n, len(segs))
	}
	restored := restore(t, img)
	restored = append(restored, make([]byte, len(flat)-len(restored))...)
	if !bytes.Equal(restored, flat) {
		t.Fatal("restored memory differs from the mapped core file's")
	}
}

func TestELFRejectsNonCore(t *testing.T) {
	if _, err := OpenELF(bytes.NewReader([]byte("not an elf file at all, really"))); err == nil {
		t.Fatal("garbage accepted")
	}
	core := buildCore(nil, "")
	if _, err := OpenELF(bytes.NewReader(core)); err == nil {
		t.Fatal("core without PT_LOAD accepted")
	}
	_ = context.Background
}

// A core file truncated after it was opened must give an error, not a
// crash from touching a mapping past the end of the file.
func TestELFMappedTruncated(t *testing.T) {
	mem := testMemory(6, 1<<20)
	path := t.TempDir() + "/core"
	core := buildCore([]testSeg{{0, 1 << 20, 1 << 20, mem}}, "")
	if err := os.WriteFile(path, core, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := OpenELF(f)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.Truncate(path, int64(len(core)-600<<10)); err != nil {
		t.Fatal(err)
	}
	_, err = Write(context.Background(), &memImage{}, src, Metadata{}, WithChunkSize(64<<10))
	if err == nil || !strings.Contains(err.Error(), "reading") {
		t.Fatalf("Write of a truncated core: %v", err)
	}
}
