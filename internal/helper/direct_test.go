package helper

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/phys"
	"github.com/kjump/kjump/internal/sysinfo"
)

// The sink sends the parts of a write that fall in kept ranges (low
// memory, the guard page) to their copies and the rest to RAM, in order.
func TestRAMSinkSplitsAtKeptRanges(t *testing.T) {
	s := newRAMSink(nil, layout.DirectKeep())
	type part struct {
		kept     bool
		off, len int64
	}
	var got []part
	err := s.split(0x9f000, 0x100000-0x9f000+0x3000, func(k *keptCopy, off, n int64) error {
		got = append(got, part{true, off, n})
		return nil
	}, func(off, n int64) error {
		got = append(got, part{false, off, n})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []part{{true, 0x9f000, 0x1000}, {false, 0xa0000, 0x60000}, {true, 0x100000, 0x1000}, {false, 0x101000, 0x2000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("split = %+v, want %+v", got, want)
	}
}

// Kept copies carry what was written there into the jump back: low memory
// as LowMem, the guard page as an extra segment, and the entry page is
// read back from them.
func TestRAMSinkKeptCopiesReachTheJump(t *testing.T) {
	s := newRAMSink(nil, layout.DirectKeep())
	page := bytes.Repeat([]byte{0xab}, jump.PageSize)
	if _, err := s.WriteAt(page, 0x100000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt(page[:16], 0x5000); err != nil {
		t.Fatal(err)
	}
	if err := s.ZeroAt(0x5008, 8); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, jump.PageSize)
	if err := s.readAt(back, 0x100000); err != nil || !bytes.Equal(back, page) {
		t.Fatalf("guard page read back: %v, %x...", err, back[:8])
	}
	if _, _, ok := s.Lend(0xff000, 2*jump.PageSize); ok {
		t.Error("Lend lent a range that overlaps the guard page")
	}
	jb, err := s.jumpBack(jump.JumpBack{Entry: 0x100010, StubAddr: 0x37ff7000, EntryPage: back})
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Repeat([]byte{0xab}, 8), make([]byte, 8)...); !bytes.Equal(jb.LowMem[0x5000:0x5010], want) {
		t.Errorf("low memory copy %x, want %x", jb.LowMem[0x5000:0x5010], want)
	}
	im, err := jb.Image()
	if err != nil {
		t.Fatal(err)
	}
	var guard int
	for _, sg := range im.Segments {
		if sg.Mem == 0x100000 {
			guard++
		}
	}
	if guard != 1 {
		t.Errorf("%d segments at the guard page (which holds the entry), want 1: %+v", guard, im.Segments)
	}
}

func TestConfined(t *testing.T) {
	region := phys.Range{Start: 0x30000000, End: 0x38000000}
	ok := phys.Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x101000}, {Start: 0x30000000, End: 0x37000000}}
	if err := confined(ok, region); err != nil {
		t.Errorf("confined(%v): %v", ok, err)
	}
	// KASLR off: the kernel at 16 MiB, in the original's RAM.
	bad := append(ok, phys.Range{Start: 0x1000000, End: 0x3000000})
	if err := confined(bad, region); err == nil || !strings.Contains(err.Error(), "outside the reserved region") {
		t.Errorf("confined(%v) = %v, want a refusal", bad, err)
	}
}

func TestDirectRegion(t *testing.T) {
	r, ok, err := directRegion("console=ttyS0 kjump.direct=0x30000000-0x38000000 kjump.resume=/dev/vda")
	if err != nil || !ok || r != (phys.Range{Start: 0x30000000, End: 0x38000000}) {
		t.Errorf("directRegion = %v %v %v", r, ok, err)
	}
	if _, ok, err := directRegion("console=ttyS0 kjump.handoff=0x37ff8000"); ok || err != nil {
		t.Errorf("a kexec'd helper reads as direct: %v %v", ok, err)
	}
	if _, ok, err := directRegion("kjump.direct=garbage"); !ok || err == nil {
		t.Errorf("a malformed kjump.direct= is not an error: %v %v", ok, err)
	}
}

func TestFirmwareRAM(t *testing.T) {
	fw := []sysinfo.FirmwareEntry{
		{Range: phys.Range{Start: 0, End: 0x9fc00}, Type: "System RAM"},
		{Range: phys.Range{Start: 0x9fc00, End: 0xa0000}, Type: "Reserved"},
		{Range: phys.Range{Start: 0x100000, End: 0x3ffe0000}, Type: "System RAM"},
	}
	want := phys.Ranges{{Start: 0, End: 0x9f000}, {Start: 0x100000, End: 0x3ffe0000}}
	if got := firmwareRAM(fw); !reflect.DeepEqual(got, want) {
		t.Errorf("firmwareRAM = %v, want %v", got, want)
	}
}
