package layout

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

func TestParseMemmapReservations(t *testing.T) {
	got, err := ParseMemmapReservations(`console=ttyS0 memmap=128M$0x30000000 memmap=exactmap memmap=64K\$1G,1M$0x100000000 memmap=640K@0`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Reservation{
		{RangeOf(0x30000000, 128<<20), "memmap=128M$0x30000000"},
		{RangeOf(1<<30, 64<<10), "memmap=64K$1G"},
		{RangeOf(1<<32, 1<<20), "memmap=1M$0x100000000"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for _, bad := range []string{"memmap=12Q$0x1000", "memmap=1M$zz", "memmap=99999999999999999999G$0"} {
		if _, err := ParseMemmapReservations(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFindReservation(t *testing.T) {
	iomem := qemuIOMem(t)
	r, err := FindReservation("console=ttyS0 memmap=128M$0x30000000", iomem, 64<<20)
	if err != nil || r.Range != (Range{Start: 0x30000000, End: 0x38000000}) {
		t.Fatalf("got %v, %v", r, err)
	}
	_, err = FindReservation("console=ttyS0", iomem, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "memmap=") || !strings.Contains(err.Error(), "no memory is reserved") {
		t.Errorf("no reservation: %v", err)
	}
	_, err = FindReservation("memmap=128M$0x30000000", iomem, 256<<20)
	if err == nil || !strings.Contains(err.Error(), "at least 256 MiB") {
		t.Errorf("too small: %v", err)
	}
	_, err = FindReservation("memmap=16M$0x01000000", iomem, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "overlaps System RAM") {
		t.Errorf("not honoured: %v", err)
	}
	ck := append(qemuIOMem(t), sysinfo.Resource{Range: Range{Start: 0x20000000, End: 0x28000000}, Name: "Crash kernel", Depth: 1})
	r, err = FindReservation("crashkernel=128M", ck, 64<<20)
	if err != nil || r.Source != "crashkernel" || r.Start != 0x20000000 {
		t.Errorf("crashkernel: %v, %v", r, err)
	}
}
