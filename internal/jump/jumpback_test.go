package jump

import (
	"encoding/binary"
	"testing"

	"github.com/kjump/kjump/internal/jump/purgatory"
)

// savedContext61 imitates struct saved_context of Linux 6.1 (packed): the
// GDT descriptor at offset 266, the IDT descriptor 12 bytes later.
func savedContext61() []byte {
	b := make([]byte, 400)
	le := binary.LittleEndian
	le.PutUint64(b[232:], 0xffffffff81234567) // misc_enable etc.: noise that must not match
	le.PutUint16(b[266:], 0x7f)
	le.PutUint64(b[268:], 0xffff88803e20b000)
	le.PutUint16(b[278:], 0xfff)
	le.PutUint64(b[280:], 0xfffffe0000000000)
	return b
}

func TestFindSavedGDT(t *testing.T) {
	d, err := FindSavedGDT(savedContext61())
	if err != nil || d != (purgatory.GDTDesc{Limit: 0x7f, Base: 0xffff88803e20b000}) {
		t.Errorf("got %+v, %v", d, err)
	}
	if _, err := FindSavedGDT(make([]byte, 400)); err == nil {
		t.Error("found a GDT in zeros (saved_context not yet filled)")
	}
}

func TestJumpBackImage(t *testing.T) {
	entryPage := make([]byte, PageSize)
	entryPage[0x0fb] = 0x48
	j := JumpBack{Entry: 0x3fa630fb, GDT: purgatory.GDTDesc{Limit: 0x7f, Base: 0xffff88803e20b000},
		StubAddr: 0x37ff7000, EntryPage: entryPage, LowMem: make([]byte, LowMemSize)}
	im, err := j.Image()
	if err != nil {
		t.Fatal(err)
	}
	if im.Entry != 0x37ff7000 || !im.PreserveContext || len(im.Segments) != 3 {
		t.Fatalf("image %+v", im)
	}
	if s := im.Segments[1]; s.Mem != 0x3fa63000 || s.MemSize != PageSize || s.Buf[0xfb] != 0x48 {
		t.Errorf("entry page segment %v", s)
	}
	if s := im.Segments[2]; s.Mem != 0 || s.MemSize != LowMemSize {
		t.Errorf("low memory segment %v", s)
	}
	// An entry inside low memory is carried by the low-memory segment.
	j.Entry = 0x9a0fb
	im, err = j.Image()
	if err != nil || len(im.Segments) != 2 || im.Segments[1].Buf[0x9a0fb] != 0x48 {
		t.Errorf("low entry: %d segments, %v", len(im.Segments), err)
	}
	j.LowMem = j.LowMem[:100]
	if _, err := j.Image(); err == nil {
		t.Error("short low memory accepted")
	}
}
