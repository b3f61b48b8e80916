package layout

import (
	"reflect"
	"testing"

	"github.com/kjump/kjump/internal/jump"
)

func TestHelperMemoryMap(t *testing.T) {
	helperRAM := Range{Start: 0x30000000, End: 0x37f00000}
	tail := Range{Start: 0x37f00000, End: 0x38000000}
	got := HelperMemoryMap(qemuFirmware, Ranges{{Start: 0, End: 0x9f000}, helperRAM}, Ranges{tail})
	want := []jump.E820Entry{
		{Range: Range{Start: 0x0, End: 0x9f000}, Type: jump.E820RAM},
		{Range: Range{Start: 0x9f000, End: 0x9fc00}, Type: jump.E820Reserved}, // original's partial low page
		{Range: Range{Start: 0x9fc00, End: 0xa0000}, Type: jump.E820Reserved}, // EBDA
		{Range: Range{Start: 0xf0000, End: 0x100000}, Type: jump.E820Reserved},
		{Range: Range{Start: 0x101000, End: 0x30000000}, Type: jump.E820Reserved}, // original's RAM, one-page hole at 1 MiB
		{Range: Range{Start: 0x30000000, End: 0x37f00000}, Type: jump.E820RAM},
		{Range: Range{Start: 0x37f00000, End: 0x38000000}, Type: jump.E820Reserved},
		{Range: Range{Start: 0x38000000, End: 0x3ffe0000}, Type: jump.E820Reserved},
		{Range: Range{Start: 0x3ffe0000, End: 0x40000000}, Type: jump.E820Reserved},
		{Range: Range{Start: 0xfffc0000, End: 0x100000000}, Type: jump.E820Reserved},
		{Range: Range{Start: 0xfd00000000, End: 0x10000000000}, Type: jump.E820Reserved},
	}
	// The original's RAM stays a separate entry from firmware ranges (the
	// helper kernel merges them itself, except across the 1 MiB hole).
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Start < got[i-1].End {
			t.Errorf("entries overlap: %v %v", got[i-1], got[i])
		}
	}
}
