package layout

import (
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

func TestSuggestReservation(t *testing.T) {
	// The 1 GiB guest: RAM 1 MiB-768 MiB (kernel at 304-327 MiB) and
	// 896 MiB-1 GiB. The lowest 16 MiB-aligned 128 MiB at or above 256 MiB
	// clear of the kernel starts at 336 MiB.
	res, err := SuggestReservation(qemuIOMem(t), 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	if res.Start != 0x15000000 || res.Size() != 128<<20 || res.Source != "memmap=128M$0x15000000" {
		t.Fatalf("%v %s", res.Range, res.Source)
	}
	// Too big for anything below 4 GiB.
	if _, err := SuggestReservation(qemuIOMem(t), 900<<20); err == nil || !strings.Contains(err.Error(), "no free System RAM range of 900 MiB") {
		t.Fatalf("900M: %v", err)
	}
	// A small machine: 1 MiB-200 MiB of RAM, nothing at 256 MiB.
	small := []sysinfo.Resource{{Range: RangeOf(1<<20, 199<<20), Name: "System RAM"},
		{Range: RangeOf(16<<20, 20<<20), Name: "Kernel code", Depth: 1}}
	res, err = SuggestReservation(small, 100<<20)
	if err != nil || res.Start != 64<<20 {
		t.Fatalf("small machine: %v %v", res.Range, err)
	}
	// Never above 4 GiB, even with lots of RAM there.
	high := []sysinfo.Resource{{Range: RangeOf(1<<20, 100<<20), Name: "System RAM"},
		{Range: RangeOf(4<<30, 8<<30), Name: "System RAM"}}
	if res, err := SuggestReservation(high, 64<<20); err == nil {
		t.Fatalf("suggested %v", res.Range)
	}
	// What it suggests, FindReservation accepts once the kernel honours it.
	if got := GrubEscape(MemmapArg(RangeOf(0x30000000, 128<<20))); got != `memmap=128M\\\$0x30000000` {
		t.Fatal(got)
	}
}
